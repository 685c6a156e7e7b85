"""Slow trends of one series: the plateau (no progress) and slowdown (throughput falling) checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from curvecast.forecasting import anomaly_messages as msg
from curvecast.forecasting.anomaly_event import Anomaly
from curvecast.forecasting.anomaly_stats import median

if TYPE_CHECKING:
    from curvecast.forecasting.schedule import LRSchedule

__all__ = ["TrendChecks"]


class TrendChecks:
    """The plateau and slowdown checks of :class:`~curvecast.forecasting.anomaly_detector.AnomalyDetector`.

    A mixin: the state lives on the detector (flat, so a saved state stays one dict of plain values).
    """

    if TYPE_CHECKING:
        recent: list[float]
        n: int
        first_step: int | None
        warmup_points: int
        anchor_level: float
        anchor_step: int | None
        anchor_n: int
        plateau_armed: bool
        plateau_rtol: float
        plateau_points: int
        plateau_fraction: float
        schedule: LRSchedule | None
        series: str
        baseline: float | None
        baseline_buf: list[float]
        slowdown_ratio: float
        slow_armed: bool

        def _rise(self, ratio: float, y: float) -> float: ...
        def _value_of(self, y: float) -> float: ...

    def _plateau(self, step: int, muted: bool, events: list[Anomaly]) -> None:
        level = median(self.recent[-9:])
        if self.anchor_step is None or level < self.anchor_level - self._rise(1.0 + self.plateau_rtol, level):
            self.anchor_level, self.anchor_step, self.anchor_n, self.plateau_armed = level, step, self.n, True
            return
        span = step - self.anchor_step
        first = self.first_step if self.first_step is not None else step
        if (
            not self.plateau_armed
            or muted
            or self.n - self.anchor_n < self.plateau_points
            or span < self.plateau_fraction * (step - first)
        ):
            return
        sched = self.schedule
        if sched is not None and (sched.drop_ahead(step) or sched.fraction_of_peak(step) < 0.3):
            return  # a planned LR drop will likely break it, or the run is already annealing
        self.plateau_armed = False
        text = msg.plateau(self.series, step, self.anchor_step, self.plateau_rtol, schedule_known=sched is not None)
        events.append(Anomaly("plateau", step, "info", text, self.series, float(span), self._value_of(level)))

    def _slowdown(self, step: int, events: list[Anomaly]) -> None:
        if self.n <= self.warmup_points:
            return  # compilation, caches and warmup make the first steps slow
        if self.baseline is None:
            self.baseline_buf.append(self.recent[-1])
            if len(self.baseline_buf) >= 50:
                self.baseline, self.baseline_buf = median(self.baseline_buf), []
            return
        level = median(self.recent[-30:])
        excess = level - self.baseline
        threshold = self._rise(1.0 / self.slowdown_ratio, self.baseline)
        if excess < threshold / 2:
            self.slow_armed = True
        elif excess >= threshold and self.slow_armed:
            self.slow_armed = False
            ratio = self._value_of(level) / self._value_of(self.baseline)
            text = msg.slowdown(self.series, step, ratio, self._value_of(self.baseline))
            events.append(Anomaly("slowdown", step, "warning", text, self.series, ratio, self._value_of(level)))
