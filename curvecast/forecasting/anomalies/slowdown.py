"""SlowdownCheck: throughput (``mode="max"``) falling well below its baseline (warning)."""

from __future__ import annotations

from curvecast.forecasting.anomalies.check import Check
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.stats import median, ratio

__all__ = ["SlowdownCheck"]

_BASELINE_POINTS = 50  # points after the warmup whose median is the baseline
_LEVEL_POINTS = 30  # recent points whose median is compared with it


class SlowdownCheck(Check):
    """The median of the last 30 points falls below ``slowdown_ratio`` times the median of the 50 points after the
    warmup. Reported once until the level is back within half the threshold."""

    kind = "slowdown"
    STATE = ("baseline", "baseline_buf", "armed")

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        super().__init__(level, settings)
        self.ratio = settings.slowdown_ratio
        self.baseline: float | None = None
        self.baseline_buf: list[float] = []  # the points after the warmup, until the baseline is known
        self.armed = True

    def update(self, step: int, value: float) -> list[Anomaly]:
        level = self.level
        if level.in_warmup:
            return []  # compilation, caches and warmup make the first steps slow
        if self.baseline is None:
            self.baseline_buf.append(level.y)
            if len(self.baseline_buf) >= _BASELINE_POINTS:
                self.baseline, self.baseline_buf = median(self.baseline_buf), []
            return []
        current = level.recent_median(_LEVEL_POINTS)
        excess = current - self.baseline
        threshold = level.rise(1.0 / self.ratio, self.baseline)
        if excess < threshold / 2:
            self.armed = True
        elif excess >= threshold and self.armed:
            self.armed = False
            fraction = ratio(level.value_of(current), level.value_of(self.baseline))
            text = message(level.series, step, fraction, level.value_of(self.baseline))
            return [Anomaly(self.kind, step, "warning", text, level.series, fraction, level.value_of(current))]
        return []


def message(series: str, step: int, ratio: float, baseline: float) -> str:
    return (
        f"{series} fell to {ratio:.0%} of its baseline ({baseline:.4g}) by step {step}. Look for a slow "
        "device or node, a data loader that cannot keep up, host-device syncs, or memory pressure."
    )
