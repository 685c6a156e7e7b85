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
# A slowdown must persist PERSIST_STEPS steps (and PERSIST_POINTS points, a full turnover of the level's window), and
# DIP_FACTOR times as long as the longest dip the run has recovered from: a busy shared machine slows a run for tens
# to hundreds of steps at a time (another job, a checkpoint, the OS; the healthy live runs of
# benchmarks/false_alarms.py dipped to half their throughput for up to 300 steps), which is no slowdown worth a
# warning; a data loader or a device that has degraded stays slow.
PERSIST_STEPS = 500
PERSIST_POINTS = _LEVEL_POINTS
DIP_FACTOR = 2.0


class SlowdownCheck(Check):
    """The median of the last 30 points falls below ``slowdown_ratio`` times the median of the 50 points after the
    warmup, and stays there for ``PERSIST_STEPS`` steps (``PERSIST_POINTS`` points at least) and ``DIP_FACTOR`` times
    as long as the longest dip the run recovered from (the machine's own jitter). Reported once until the level is
    back within half the threshold."""

    kind = "slowdown"
    STATE = ("baseline", "baseline_buf", "armed", "below_run", "below_since", "longest_dip")

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        super().__init__(level, settings)
        self.ratio = settings.slowdown_ratio
        self.baseline: float | None = None
        self.baseline_buf: list[float] = []  # the points after the warmup, until the baseline is known
        self.armed = True
        self.below_run, self.longest_dip = 0, 0  # points the level has stayed below; the longest dip recovered (steps)
        self.below_since: int | None = None  # the step the current dip began

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
        below = excess >= threshold
        if not below and self.armed and self.below_since is not None:
            self.longest_dip = max(self.longest_dip, step - self.below_since)  # recovered from, unreported
        self.below_run = self.below_run + 1 if below else 0
        self.below_since = (self.below_since if self.below_since is not None else step) if below else None
        if excess < threshold / 2:
            self.armed = True
        lasted = step - self.below_since if self.below_since is not None else 0
        needed = max(PERSIST_STEPS, DIP_FACTOR * self.longest_dip)
        if not (self.armed and self.below_run >= PERSIST_POINTS and lasted >= needed):
            return []
        self.armed = False
        fraction = ratio(level.value_of(current), level.value_of(self.baseline))
        text = message(level.series, step, fraction, level.value_of(self.baseline))
        return [Anomaly(self.kind, step, "warning", text, level.series, fraction, level.value_of(current))]


def message(series: str, step: int, ratio: float, baseline: float) -> str:
    return (
        f"{series} fell to {ratio:.0%} of its baseline ({baseline:.4g}) by step {step}. Look for a slow "
        "device or node, a data loader that cannot keep up, host-device syncs, or memory pressure."
    )
