"""Report: what the brain hands to the actuators after one forecasting pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curvecast.forecasting.anomalies import Anomaly
    from curvecast.forecasting.forecast import Forecast

__all__ = ["Report"]


@dataclass(frozen=True)
class Report:
    """One forecasting pass over a run.

    Attributes:
        step: the optimizer step the report describes (the last observed step of ``monitor``).
        monitor: the series forecast, e.g. ``"loss"`` or ``"val_loss"``.
        horizon: the step forecast to (``max_steps``), or None when the run length is unknown.
        forecast: the forecast of ``monitor`` at ``horizon``, or None when none was made this pass.
        anomalies: anomalies found since the previous report, oldest first.
        target: the user's target for ``monitor``, if any.
        lr_schedule_known: whether the planned LR of every step up to ``horizon`` was known to the forecaster.
        lr_drop_ahead: whether the planned LR still falls markedly after ``step`` (a plateau may still break).
        observed: the last finite observed value of ``monitor``, or None.
        best: the best observed value so far (lowest for ``mode="min"``), or None.
        reached_at: the first observed step at which ``monitor`` reached ``target``, or None (not yet, or no target).
        mode: ``"min"`` when lower is better for ``monitor``, ``"max"`` otherwise.
    """

    step: int
    monitor: str
    horizon: int | None = None
    forecast: Forecast | None = None
    anomalies: tuple[Anomaly, ...] = field(default_factory=tuple)
    target: float | None = None
    lr_schedule_known: bool = False
    lr_drop_ahead: bool = False
    observed: float | None = None
    best: float | None = None
    reached_at: int | None = None
    mode: str = "min"
