"""Report: what the brain hands to the actuators after one pass, and all an actuator reads of the run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curvecast.forecasting.anomalies import Anomaly
    from curvecast.forecasting.forecast import Forecast
    from curvecast.forecasting.schedule import LRSchedule
    from curvecast.forecasting.stop_request import StopRequest

__all__ = ["Report", "target_chance"]

@dataclass(frozen=True)
class Report:
    """One pass over a run: its forecast, the anomalies found since the previous report, and what the run observed.

    Actuators read nothing else: every fact they share (the chance of the target, the best value, the peak LR, the
    stop decided) is computed here once, not again downstream.

    Attributes:
        step: the optimizer step the report describes (the last observed step of ``monitor``).
        run_step: the last optimizer step the run had taken when the report was handed on, or None (then ``step``): a
            forecast made in the worker arrives some steps after the point it was made from, and a stop decided on
            it takes effect at this step.
        monitor: the series forecast, e.g. ``"loss"`` or ``"val_loss"``.
        horizon: the step forecast to (``max_steps``), or None when the run length is unknown.
        forecast: the forecast of ``monitor`` at ``horizon``, or None when none was made this pass.
        anomalies: anomalies found since the previous report, oldest first.
        target: the user's target for ``monitor``, if any.
        mode: ``"min"`` when lower is better for ``monitor``, ``"max"`` otherwise.
        target_chance: the chance that ``monitor`` ends on the good side of ``target`` at the horizon (below it for
            ``mode="min"``), or None without a target or a forecast.
        observed: the last finite observed value of ``monitor``, or None.
        best: the best observed value so far (lowest for ``mode="min"``), or None.
        reached_at: the first observed step at which ``monitor`` reached ``target``, or None (not yet, or no target).
        lr: the LR recorded at the last step, or None when no LR is recorded.
        peak_lr: the highest LR recorded so far, or None.
        schedule: the planned LR of every step ``0..horizon`` (recorded, then planned), or None while unknown.
        lr_schedule_known: whether the planned LR of every step up to ``horizon`` was known to the forecaster.
        lr_drop_ahead: whether the planned LR still falls markedly after ``step`` (a plateau may still break).
        stop: the stop decided this round (:class:`~curvecast.forecasting.stop_request.StopRequest`), or None.
        is_last: whether this is the run's last report: the horizon is reached, a stop was decided, or training ended.
        ended_by: set on the last report of a run that ended before its planned end (``horizon``) without a stop of
            curvecast's: what stopped it, in words (Lightning's ``EarlyStopping`` with its reason, a ``Timer``, or
            another callback or the module setting ``trainer.should_stop``). The run ended at ``stop_step`` and
            such a report carries no forecast: the run will not reach the horizon. None otherwise.
        series: the run's recorded series as of this report (read-only ``Series`` views: ``steps``, ``values``,
            ``counts``), by name: the monitor, ``lr`` and the sensors' measures.

    Example::

        >>> report = Report(step=10, monitor="loss")
        >>> report.forecast is None, report.target_chance, report.stop, report.is_last
        (True, None, None, False)
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
    target_chance: float | None = None
    lr: float | None = None
    peak_lr: float | None = None
    schedule: LRSchedule | None = field(default=None, repr=False)
    stop: StopRequest | None = None
    is_last: bool = False
    run_step: int | None = None
    ended_by: str | None = None
    series: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def stop_step(self) -> int:
        """The step a stop decided on this report takes effect at: ``run_step``, never before ``step``."""
        return self.step if self.run_step is None else max(int(self.run_step), int(self.step))


def target_chance(forecast: Forecast | None, target: float | None) -> float | None:
    """The chance that the forecast metric ends on the good side of ``target`` at the horizon, or None when there is
    no target, no usable forecast, or the chance is not a number.

    Example::

        >>> target_chance(None, 1.0) is None
        True
    """
    if target is None or forecast is None or not forecast.ok:
        return None
    chance = forecast.prob_beyond(target)
    return chance if math.isfinite(chance) else None
