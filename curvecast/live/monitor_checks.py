"""The user's monitor, checked once the run has had a chance to log it: told as Lightning's EarlyStopping tells it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curvecast.failsafe import warn_once
from curvecast.history import RunHistory
from curvecast.series import METRIC_PREFIX, TRAIN_LOSS

__all__ = ["check_monitor_logged", "warn_if_no_loss"]


def check_monitor_logged(monitor: str, history: RunHistory, logged: Mapping[str, Any]) -> None:
    """Raise RuntimeError naming the logged metrics when ``monitor`` was neither recorded nor logged (on step, too)."""
    if monitor == TRAIN_LOSS or monitor in history or monitor in logged or f"{monitor}_step" in logged:
        return
    available = ", ".join(f"`{name}`" for name in sorted(logged) if not name.startswith(METRIC_PREFIX))
    raise RuntimeError(
        f"Curvecast(monitor={monitor!r}) forecasts a metric the module never logged. Pass `monitor=` one of "
        f"the logged metrics ({available or 'none is logged'}), or None for the training loss."
    )


def warn_if_no_loss(monitor: str, history: RunHistory, steps_without_loss: int) -> None:
    """Warn once when the training loss is forecast but ``training_step`` returned none."""
    if monitor == TRAIN_LOSS and TRAIN_LOSS not in history and steps_without_loss:
        warn_once(
            "curvecast: training_step returned no loss (with manual optimization, return it), so there is no "
            "training loss to forecast; return the loss, or log a metric and pass `Curvecast(monitor=...)`.",
            key="no-loss",
        )
