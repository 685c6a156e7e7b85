"""PlateauCheck: the series has stopped improving (info)."""

from __future__ import annotations

import math

from curvecast.forecasting.anomalies.check import Check
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings

__all__ = ["PlateauCheck"]


class PlateauCheck(Check):
    """The median of 9 points has not improved by ``plateau_rtol`` over the last ``plateau_fraction`` of the steps
    seen and at least ``plateau_points`` points.

    Reported once until the series improves again; muted while the known LR schedule still drops by half ahead or is
    already below 30% of its peak. A scheduled LR rise starts the search afresh.
    """

    kind = "plateau"
    STATE = ("anchor_level", "anchor_step", "anchor_n", "armed")

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        super().__init__(level, settings)
        self.rtol, self.fraction = settings.plateau_rtol, settings.plateau_fraction
        self.min_points = settings.plateau_points
        self.armed = True
        self.on_lr_rise()

    def on_lr_rise(self) -> None:
        # The best level since the last improvement, where (step) and when (point count) it was reached.
        self.anchor_level, self.anchor_n = math.inf, 0
        self.anchor_step: int | None = None

    def update(self, step: int, value: float) -> list[Anomaly]:
        level = self.level
        current = level.recent_median(9)
        if self.anchor_step is None or current < self.anchor_level - level.rise(1.0 + self.rtol, current):
            self.anchor_level, self.anchor_step, self.anchor_n, self.armed = current, step, level.n, True
            return []
        span = step - self.anchor_step
        first = level.first_step if level.first_step is not None else step
        if (
            not self.armed
            or level.muted
            or level.n - self.anchor_n < self.min_points
            or span < self.fraction * (step - first)
        ):
            return []
        schedule = level.schedule
        if schedule is not None and (schedule.drop_ahead(step) or schedule.fraction_of_peak(step) < 0.3):
            return []  # a planned LR drop will likely break it, or the run is already annealing
        self.armed = False
        text = message(level.series, step, self.anchor_step, self.rtol, schedule_known=schedule is not None)
        return [Anomaly(self.kind, step, "info", text, level.series, float(span), level.value_of(current))]


def message(series: str, step: int, since: int, rtol: float, *, schedule_known: bool) -> str:
    hint = "" if schedule_known else " If the LR schedule decays later, this may be expected."
    return (
        f"{series} has not improved by {rtol:.0%} since step {since} ({step - since} steps, up to step {step}). "
        f"Try a higher LR, or check that the data and labels reach the model.{hint}"
    )
