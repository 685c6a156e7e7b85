"""The divergence rules that catch a climb under way (warnings): a sustained rise of the level, and a drift (CUSUM)."""

from __future__ import annotations

import math

from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import BASELINE_POINTS, MIN_DIFFS, SeriesLevel
from curvecast.forecasting.anomalies.progress import Progress
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.state import Stateful
from curvecast.forecasting.anomalies.stats import MEDIAN_NOISE, median, push, sigma_of_diffs

__all__ = ["CLIMB_GIVEN_BACK", "DriftRule", "SustainedRiseRule", "undoes_progress"]

KIND = "divergence"  # the kind of the events these rules report
_LEVEL = 7  # points in the short level of the sustained-rise rule
_LEVEL_SD = MEDIAN_NOISE / math.sqrt(_LEVEL)  # noise of a median of _LEVEL points, in units of the per-point noise
# How far (in level noise) the level must stand above the debiased running best. Leave-one-group-out over the healthy
# live runs, the wild logs and the labelled curves (benchmarks/false_alarms.py --cv) prefers 3 in every fold. At 2.5 a
# noisy stretch of a healthy fall (six points in a row 1-1.6 noise units high) passed for a climb: 2.75 takes the
# healthy live runs' false warnings from 8 to 5 (3 at 3.0) and keeps every injected divergence of
# benchmarks/anomaly_detection.py caught as early as 2.5 did (3.0 catches one at +22% instead of under +20%).
_RISE_Z = 2.75
_RISE_RUN = 3  # consecutive points it must stay there
_RISE_MIN = 0.08  # and at least this relative rise (low-noise curves wander by more than their noise)
_LEVELS = 64 + 2 * _LEVEL  # levels kept for the level's own wander (64 lag-7 differences)
_BEST_OF = 48  # the running best is the lowest of the last 48 levels (a bounded look-back)
# A rise must also stand clear of the noise of the latest 16 points' differences: right after a first fall (and a
# warmup, whose rising LR mutes the detectors) a classifier's batch loss scatters several times more than over the
# quiet steps before it, which the long and the 32-difference noise still weigh. An MLP on overlapping blobs (AdamW
# 1e-2, batch 32) was warned of a climb in 6 of 12 healthy seeds, 5 of them at steps 46-51 (2 with it); the healthy
# live runs' false warnings went 5 -> 4 and the speedrun's 2 -> 1 (benchmarks/false_alarms.py, anomaly_detection.py),
# for 3 of the ~250 injected divergences caught later or not (all 112 of anomaly_detection.py still caught).
_LATEST_DIFFS = 16
_PAST_LAG = 16  # the largest excess of the run so far, taken this many points back, calibrates the margin
_PAST_FACTOR = 1.25  # a rise must stand this much above the largest excess of the run so far
_DRIFT_CLIP = 3.0  # z of one point in the CUSUM is clipped here: one spike cannot make a drift
_DRIFT_K = 0.5  # allowance per point of the CUSUM
_MEDIAN5_SD = MEDIAN_NOISE / math.sqrt(5.0)  # noise of a median of 5 points, in units of the per-point noise
# The rise of that median above where the CUSUM last stood at zero must stand this many of its noise units clear: the
# rise a drift warning quotes is then no noise.
_DRIFT_CLEAR_Z = 3.0
# A climb warns only once it gives back this fraction of the progress the series made (see Progress). For a loss:
# +20% from halfway through any clean labelled curve gives back at least 0.63% of its progress, while a converged
# loss (2.0 -> 0.001) wobbling 2.4-fold gives back 0.07%. For a score (accuracy, reward; mode="max"): three quarters
# of its gains, since an RL return routinely gives back half of them for a while (the wild logs' DQN rewards).
CLIMB_GIVEN_BACK = {"min": 0.005, "max": 0.75}


def undoes_progress(progress: Progress, y: float) -> bool:
    """The level ``y`` gives back enough of the progress made for a climb warning; in the early transient, while the
    best still falls fast, only a large climb counts (see ``Progress.needed``)."""
    return progress.given_back(y) >= progress.needed(CLIMB_GIVEN_BACK[progress.level.mode])


class SustainedRiseRule(Stateful):
    """The median of the last 7 points (the level) stands above the lowest level of the last 48 points for 3
    consecutive points, by at least 8% and by a margin in noise units of the level: 2.5 plus the expected low bias of a
    minimum over the levels behind it (``sqrt(2 ln(points / 7))``), and at least 1.25 times the largest excess the run
    has shown before (so curves whose level wanders widely set themselves a higher bar).

    The level's noise is the larger of what the per-point noise implies and the level's own wander (second
    differences of past levels). A steady climb on a noisy, sparse curve, where the CUSUM against a lagging median
    starts late, is caught within a few points of its onset. Re-arms once the excess is below half the margin.
    """

    STATE = ("best", "best_step", "count", "run", "armed", "levels", "zs", "peak")

    def __init__(self, level: SeriesLevel) -> None:
        self.level = level
        self.on_lr_rise()

    def on_lr_rise(self) -> None:
        self.best, self.count, self.run, self.armed, self.peak = math.inf, 0, 0, True, 0.0
        self.best_step: int | None = None
        self.levels: list[float] = []  # the last levels, for the running best and the level's own wander
        self.zs: list[float] = []  # the last excesses in level noise units, _PAST_LAG of them

    def disarm(self) -> None:
        """Another rule warned of this climb: stay silent until the level is back near its best."""
        self.armed = False

    def _level_noise(self) -> float:
        """Noise of the short level from its own wander: second differences of past levels 7 apart.

        Real curves wander more than independent noise would let a median of 7 points wander
        (batches and data order are correlated), so the level is judged by its own history. Second
        differences leave out the trend and its curvature (a steep descent is no wander); the latest
        levels are left out so that a rise under way does not inflate its own yardstick.
        """
        old = self.levels[:-_LEVEL]
        if len(old) < 4 * _LEVEL:
            return 0.0
        second = [a - 2.0 * b + c for a, b, c in zip(old, old[_LEVEL:], old[2 * _LEVEL :], strict=False)]
        return sigma_of_diffs(second) / math.sqrt(3.0)  # var(second) = 6 var(level); sigma_of_diffs halves

    def update(self, step: int, value: float, progress: Progress) -> list[Anomaly]:
        level = self.level
        if len(level.recent) < _LEVEL or len(level.diffs) < MIN_DIFFS or level.muted:
            return []
        current = level.recent_median(_LEVEL)
        push(self.levels, current, _LEVELS)
        self.count += 1
        window = self.levels[-_BEST_OF:]
        low = window.index(min(window))  # the first lowest, as min over the indices gave (in C: a third of its cost)
        if window[low] != self.best or self.best_step is None:
            self.best, self.best_step = window[low], step - (len(window) - 1 - low)
        sd = _LEVEL_SD * level.noise(current)
        effective = min(self.count, _BEST_OF) / _LEVEL  # roughly independent levels behind the best
        bias = math.sqrt(2.0 * math.log(effective)) if effective > 1.0 else 0.0
        excess = current - self.best
        # The run's own largest excess so far (lagged, so a rise under way does not raise its own bar):
        # curves whose level wanders widely (correlated batches, noise bursts) set themselves a higher bar.
        push(self.zs, excess / sd, _PAST_LAG)
        if len(self.zs) == _PAST_LAG:
            self.peak = max(self.peak, self.zs[0])
        z_bar = max(_RISE_Z + bias, _PAST_FACTOR * self.peak)
        margin = max(sd * z_bar, level.least_rise(1.0 + _RISE_MIN, current))
        if excess > margin:  # about to count: check against the level's own wander and the latest noise too
            sd = max(sd, self._level_noise(), _LEVEL_SD * level.diffs_noise(_LATEST_DIFFS))
            margin = max(margin, sd * z_bar)
        self.run = self.run + 1 if excess > margin else 0
        if excess < margin / 2:
            self.armed = True
        if self.run < _RISE_RUN or not self.armed or not undoes_progress(progress, current):
            return []
        self.armed = False
        onset = self.best_step if self.best_step is not None else step
        # The rise judged is that of the level (the median of 7 points), not of the latest point: quote it.
        text = climbing_message(
            level.series, step, onset, level.value_of(current), level.value_of(self.best), _LEVEL, level.mode
        )
        return [Anomaly(KIND, step, "warning", text, level.series, excess / sd, value)]


class DriftRule(Stateful):
    """A one-sided CUSUM of z (allowance 0.5, clipped at 3, threshold ``drift_h``) against the median of the last 32
    points, which lags a climb but not the noise, with the median of 5 points up by ``drift_min_rise`` from where the
    CUSUM last stood at zero. Re-arms once the median of 3 points is back there.
    """

    STATE = ("cusum", "zero_step", "zero_level", "armed")

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        self.level = level
        self.h, self.min_rise = settings.drift_h, settings.drift_min_rise
        self.cusum, self.armed = 0.0, True
        self.zero_step: int | None = None  # the step and level where the CUSUM last stood at zero
        self.zero_level: float | None = None

    def on_lr_rise(self) -> None:
        self.cusum, self.armed = 0.0, True

    def disarm(self, *, clear_sum: bool) -> None:
        """Another rule warned of this climb, or confirmed the blow-up: stay silent until the level is back."""
        self.armed = False
        if clear_sum:
            self.cusum = 0.0

    def creeping(self, fraction: float) -> bool:
        """An early sign, not an alarm: the CUSUM is past half its threshold and the median of the last 5 points
        stands ``fraction`` of ``drift_min_rise`` above where the CUSUM last stood at zero, clear of its noise (a burst
        of noise lifts the CUSUM and the median of 5 by chance), and giving back as much of the progress made as a climb
        warning needs (:func:`undoes_progress`): in the early transient, half of it. A classifier's loss on its fast way
        to near zero (0.65 -> 0.005 in 140 steps) has batches ten times its median, one misclassified example each;
        their median of 5 tripled (0.005 -> 0.014, 1.3% of the fall given back) and made an instability warning."""
        level = self.level
        if not (self.cusum > self.h / 2 and self.zero_level is not None and len(level.recent) >= 5):
            return False
        level5 = level.recent_median(5)
        if not undoes_progress(level.progress, level5):
            return False
        rise = level5 - self.zero_level
        noise = level.noise(self.zero_level)  # the recent noise too: a burst of it is what lifts the median by chance
        # On the raw scale the full CLEAR_SCATTERS too, not a fraction of it: the median of 5 of a REINFORCE surrogate
        # (batches near 0, a fifth of them near +-0.1) jumps 1.7-3 scatters between the two now and then, and each such
        # jump made "loss creeping up" an instability warning, beside spikes the same batches made.
        least = level.least_rise(1.0 + fraction * self.min_rise, 1.0)
        return rise >= least and rise >= _DRIFT_CLEAR_Z * _MEDIAN5_SD * noise

    def update(self, step: int, value: float, progress: Progress) -> list[Anomaly]:
        level = self.level
        if len(level.diffs) < MIN_DIFFS:
            return []
        y, short = level.y, level.recent_median(3)
        base = median(level.recent[-BASELINE_POINTS:-1]) if len(level.recent) > 1 else y
        level.refresh_noise()  # the drift test keeps the long-run noise alone
        noise = max(level.sigma, level.noise_floor(base))
        r = min((y - base) / noise, _DRIFT_CLIP)
        self.cusum = max(0.0, self.cusum + r - _DRIFT_K)
        level5 = level.recent_median(5)
        if self.cusum == 0.0:
            self.zero_step, self.zero_level = step, min(base, level5)
        if not self.armed and self.zero_level is not None and short <= self.zero_level:
            self.armed = True
        # The CUSUM alone fires on heavy-tailed noise; a drift also needs the median of 5 points up, by a rise that
        # stands clear of the noise of such a median (the rise the warning quotes).
        rise = level5 - self.zero_level if self.zero_level is not None else -math.inf
        risen = rise >= level.least_rise(1.0 + self.min_rise, level5) and rise >= _DRIFT_CLEAR_Z * _MEDIAN5_SD * noise
        if not (self.cusum > self.h and risen and self.armed and not level.muted and undoes_progress(progress, level5)):
            return []
        self.armed, self.cusum = False, 0.0
        onset = self.zero_step if self.zero_step is not None else step
        since = self.zero_level if self.zero_level is not None else base
        text = climbing_message(level.series, step, onset, level.value_of(level5), level.value_of(since), 5, level.mode)
        return [Anomaly(KIND, step, "warning", text, level.series, r, value)]


def climbing_message(
    series: str, step: int, onset: int, level: float, base: float, points: int, mode: str = "min"
) -> str:
    """The warning of a climb: ``level``, the median of the last ``points`` points at ``step``, against ``base``, the
    level it climbed from (worse than it by construction: the message never quotes a fall as a climb)."""
    where = f"{level:.4g} at step {step} (median of the last {points} points) against {base:.4g} before"
    if mode == "max":  # a score: worse is lower
        return (
            f"{series} has been falling since about step {onset}: {where}. If it keeps falling, resume from a "
            f"checkpoint before step {onset} with a lower LR."
        )
    return (
        f"{series} has been climbing since about step {onset}: {where}. If it keeps rising, resume from a checkpoint "
        f"before step {onset} with a lower LR (a third lower is a common first try) or tighter gradient clipping."
    )
