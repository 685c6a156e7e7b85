"""The user's monitor, checked once the run has had a chance to log it: a metric logged from a later step is waited
for (and said so once), and one never logged by the end is a warning naming the metrics that were."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from curvecast._lightning import dev_run, is_global_zero, several_players
from curvecast.failsafe import warn_once
from curvecast.history import RunHistory
from curvecast.metric_direction import first_return
from curvecast.series import METRIC_PREFIX, TRAIN_LOSS, is_validation_metric

__all__ = [
    "expected_validations",
    "monitor_missing",
    "say_monitor_awaited",
    "say_if_too_few_points",
    "warn_if_no_loss",
    "warn_monitor_never_logged",
]

log = logging.getLogger("curvecast")


def monitor_missing(monitor: str, history: RunHistory, logged: Mapping[str, Any]) -> str | None:
    """None when ``monitor`` was recorded or logged (on step, too); else the names of the metrics that were."""
    if monitor == TRAIN_LOSS or monitor in history or monitor in logged or f"{monitor}_step" in logged:
        return None
    return logged_names(logged) or "none is logged"


def logged_names(logged: Mapping[str, Any]) -> str:
    """The metrics the module logged, quoted and comma-separated ("" when none is)."""
    return ", ".join(f"`{name}`" for name in sorted(logged) if not name.startswith(METRIC_PREFIX))


def say_monitor_awaited(monitor: str, available: str) -> None:
    """Told once, when the run first had a chance to log ``monitor`` and has not: a metric may start later."""
    log.info(
        "curvecast: `%s` has not been logged yet (logged so far: %s); forecasts start once it is.", monitor, available
    )


def warn_monitor_never_logged(monitor: str, available: str) -> None:
    """Warned once, at the end of a run that never logged ``monitor``: nothing could be forecast."""
    warn_once(
        f"curvecast: Curvecast(monitor={monitor!r}) forecasts a metric the module never logged in this run, so "
        f"nothing was forecast. Pass `monitor=` one of the logged metrics ({available}), or None for the training "
        "loss.",
        key=f"monitor-never-logged-{monitor}",
    )


def warn_if_no_loss(monitor: str, history: RunHistory, steps_without_loss: int, trainer: Any, pl_module: Any) -> None:
    """Warn once when the training loss is forecast but ``training_step`` returned none, naming what to forecast
    instead: an RL agent's return where the run logs one (an actor-critic agent steps two optimizers by hand, and
    neither loss says how its training goes: the critic's grows with the returns); with several optimizers stepped by
    hand (a GAN) one of the logged metrics, as no one loss is the run's to return."""
    if monitor != TRAIN_LOSS or TRAIN_LOSS in history or not steps_without_loss:
        return
    logged: Mapping[str, Any] = getattr(trainer, "callback_metrics", None) or {}
    players = several_players(trainer, pl_module)
    rl_return = first_return(logged)
    names = logged_names(logged)
    if rl_return is not None:
        advice = f"the run logs `{rl_return}`, an RL agent's return: pass `Curvecast(monitor={rl_return!r})`"
        advice += " to forecast it."
    elif players:
        what = "several optimizers are stepped, so no one loss is the run's objective: pass `Curvecast(monitor=...)`"
        advice = f"{what} the logged metric to forecast ({names or 'none is logged'})."
    else:
        logged_now = f" (logged: {names})" if names else ""
        advice = f"return the loss, or log a metric and pass `Curvecast(monitor=...)`{logged_now}."
    manual = "" if players else " (with manual optimization, return it)"
    warn_once(
        f"curvecast: training_step returned no loss{manual}, so there is no training loss to forecast; {advice}",
        key="no-loss",
    )


def expected_validations(trainer: Any) -> int | None:
    """How many validations the fit will run, from the Trainer's settings once its loops are set up; None when it
    cannot tell (an iterable without a length, a time limit, no limit at all)."""
    try:
        batches = float(trainer.num_training_batches)  # per epoch
        every = trainer.val_check_batch  # training batches between validations within an epoch
        epochs_between = trainer.check_val_every_n_epoch  # None: validation counts batches across epochs
        total = float(trainer.estimated_stepping_batches) * int(trainer.accumulate_grad_batches)
    except (AttributeError, TypeError, ValueError):
        return None
    if not (math.isfinite(batches) and math.isfinite(total) and batches > 0 and every):
        return None
    if not math.isfinite(float(every)):
        return 0
    if epochs_between is None:
        return int(total // every)
    # Lightning validates every `every` batches of each epoch it validates in (epoch e when (e + 1) % epochs_between
    # is 0), and in the partial last epoch that `max_steps` cuts short as well, up to where it stops.
    whole, rest = divmod(total, batches)
    count = int(whole // epochs_between) * int(batches // every)
    if (int(whole) + 1) % epochs_between == 0:
        count += int(rest // every)
    return count


def say_if_validated_too_rarely(trainer: Any, monitor: str, needed: int) -> None:
    """At the start of training, rank 0: a validation ``monitor`` this run will log fewer than ``needed`` times is
    said so (not under ``fast_dev_run``: Lightning cuts the run to a validation or so, the user's real run may have
    plenty)."""
    if dev_run(trainer) or not is_global_zero(trainer) or monitor == TRAIN_LOSS or not is_validation_metric(monitor):
        return
    say_if_too_few_points(monitor, expected_validations(trainer), needed)


def say_if_too_few_points(monitor: str, expected: int | None, needed: int) -> None:
    """Told once, at the start: a validation metric that this run will log fewer times than a forecast needs."""
    if expected is None or expected >= needed:
        return
    times = "once" if expected == 1 else f"about {expected} times"
    log.warning(
        "curvecast: `%s` is logged at each validation, and this run validates %s: a forecast needs %d points, so "
        "none will be made. Validate more often (e.g. `Trainer(val_check_interval=0.25)`), or forecast the training "
        "loss (`Curvecast(monitor=None)`).",
        monitor, times, needed,
    )  # fmt: skip
