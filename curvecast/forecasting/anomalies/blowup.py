"""BlowUpRule: the divergence rules measured against the best level: a jump while the noise is unknown, and the
confirmed blow-up (critical)."""

from __future__ import annotations

import math

from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import MIN_DIFFS, SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.state import Stateful
from curvecast.forecasting.anomalies.stats import ratio, times

__all__ = ["BlowUpRule"]

KIND = "divergence"  # the kind of the events these rules report


class BlowUpRule(Stateful):
    """Values at ``divergence_ratio`` times the best level (the running minimum of the median of 3 points).

    - **jump** (warning): with too few points to know the noise, the first such value;
    - **confirmed** (critical): ``confirm_points`` consecutive such values spanning at least ``confirm_steps`` steps
      (single spikes never confirm). Not within the points muted after a scheduled LR rise.

    Each re-arms once the level is back within half the ratio of its best.
    """

    STATE = ("best", "elevated_run", "elevated_since", "critical_armed", "jump_armed")

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        self.level = level
        self.ratio, self.confirm_points, self.confirm_steps = (
            settings.divergence_ratio, settings.confirm_points, settings.confirm_steps
        )  # fmt: skip
        self.best, self.elevated_run, self.elevated_since = math.inf, 0, 0
        self.critical_armed, self.jump_armed = True, True

    def on_lr_rise(self) -> None:
        self.best, self.elevated_run = math.inf, 0

    def update(self, step: int, value: float) -> list[Anomaly]:
        level, y = self.level, self.level.y
        short = level.recent_median(3)
        best_before = self.best
        self.best = min(self.best, short)
        best_value = level.value_of(best_before)
        elevated = math.isfinite(best_before) and y - best_before >= level.rise(self.ratio, best_before)
        self.elevated_run = self.elevated_run + 1 if elevated else 0
        if self.elevated_run == 1:
            self.elevated_since = step
        if not elevated and self.elevated_run == 0 and short - self.best < level.rise(self.ratio, short) / 2:
            self.critical_armed = self.jump_armed = True
        events: list[Anomaly] = []
        if self.elevated_run == 1 and len(level.diffs) < MIN_DIFFS and self.jump_armed:
            # Too few points to know the noise (sparse evaluations): a jump this large is news.
            self.jump_armed = False
            text = jump_message(level.series, step, value, best_value)
            events.append(Anomaly(KIND, step, "warning", text, level.series, ratio(value, best_value), value))
        if (
            self.elevated_run >= self.confirm_points
            and step - self.elevated_since >= self.confirm_steps
            and self.critical_armed
            and not level.after_lr_rise
        ):
            self.critical_armed = False
            text = confirmed_message(level.series, step, self.elevated_since, value, best_value, self.ratio)
            events.append(Anomaly(KIND, step, "critical", text, level.series, ratio(value, best_value), value))
        return events


def jump_message(series: str, step: int, value: float, best: float) -> str:
    return (
        f"{series} jumped to {value:.4g} at step {step}, {times(value, best, 'its best')}. If the next "
        "values stay this high the run has diverged: lower the LR or add warmup and gradient clipping."
    )


def confirmed_message(series: str, step: int, since: int, value: float, best: float, ratio: float) -> str:
    above = f"above {ratio:.2g}x its best" if best > 0 else "well above its best"
    return (
        f"{series} diverged: since step {since} it has stayed {above} ({best:.4g}); it is "
        f"{value:.4g} at step {step}. Stop, resume from a checkpoint before step {since} (about 100 steps "
        "earlier), skip the batches in between, and lower the LR by a third or more."
    )
