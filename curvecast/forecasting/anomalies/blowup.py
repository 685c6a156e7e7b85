"""BlowUpRule: the divergence rules measured against the best level: a jump while the noise is unknown, and the
confirmed blow-up (critical)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import MIN_DIFFS, SeriesLevel
from curvecast.forecasting.anomalies.progress import Progress, best_candidate, short_level
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.state import Stateful
from curvecast.forecasting.anomalies.stats import MEDIAN_NOISE, ratio, times

__all__ = ["CONFIRM_GIVEN_BACK", "CONFIRM_Z", "JUMP_AFTER_STEPS", "MIN_PROXY_DIFFS", "BlowUpRule", "early_noise"]

KIND = "divergence"  # the kind of the events these rules report
# A confirmed divergence stands this many noise units above the best level, as well as `divergence_ratio` times it,
# plus the low bias of that best (the lowest of n/3 medians of 3 points lies about sqrt(2 ln(n/3)) of their spread
# below their typical level): a per-step loss whose single batches swing 2-5x (small batches, 50-step logging)
# reaches 1.5x its biased-low best three times running as a matter of course (the 80 wild logs: 60 critical alerts
# with the ratio alone).
CONFIRM_Z = 3.0
SHORT_SPREAD = MEDIAN_NOISE / math.sqrt(3.0)  # the spread of a median of 3 points, in units of the per-point noise
# ... and gives back this fraction of the progress the series made (see Progress): a loss that fell 2.0 -> 0.001 and
# wobbles to 0.0024 has given back 0.07%; the real divergences of the labelled curves gave back 2-100% (an ogbg loss
# 0.76 -> 0.054 -> 0.08: 4%; a CTC loss 32 -> 0.68 -> 6: 17%). A score (accuracy, reward; mode="max") must fall back
# to where it started: RL returns halve and recover.
CONFIRM_GIVEN_BACK = {"min": 0.01, "max": 1.0}
# The jump rule (noise unknown) is for sparse evaluations: within the first 100 steps of a run the loss bumps up as
# the optimizer settles (Adam's first steps; batch size 1), and a per-step series knows its noise by step 9.
JUMP_AFTER_STEPS = 100
MIN_PROXY_DIFFS = 3  # differences before the first points' spread stands in for the noise (early_noise)
# A confirmed divergence climbed from half the ratio above its best to the ratio within this many points: a loss whose
# objective changes on purpose rises slowly and smoothly (a VAE's KL weight warming up from 0 to 1 over 600 steps took
# 61-96 points there, from 1.41 to 2.35: a "divergence" stopped at step 373 of 1200), where the 18 real divergences of
# benchmarks/anomaly_detection.py all climbed within 10 points (each still confirmed, as early) and a steady 1% a point
# within 25. A slower climb is warned of, not stopped: a slow genuine divergence (a linear drift) loses its stop too.
FAST_CLIMB_POINTS = 30
# A loss whose median of 3 stays a million times above the lowest it reached, for `confirm_points` points in a row, has
# blown up whatever else holds: within an LR warm-up (where every step's LR rise starts the best afresh) such a loss
# otherwise ran on from 0.175 to 2e29, until it overflowed to inf 100 steps later.
BLOWN_UP_RATIO = 1e6
# A rise that is a step at the start of an epoch (the median of 3 leaves the ratio of the best with an epoch's first
# step among its points; its level over this many points is the step's) is where a run changes its data or its loss by
# design: a curriculum's harder
# examples, mixup or a stronger augmentation switched on. A tiny MLP's loss on easy blobs, 0.003, jumped to 0.3 at the
# epoch its hard examples joined, then fell to 0.09 and stayed there: a "divergence" stopped at step 375 in 2 of 3
# seeds. Such a step is warned of, not stopped, unless the loss climbs on to the ratio times the level it stepped to.
EPOCH_STEP_POINTS = 4


class BlowUpRule(Stateful):
    """Values at ``divergence_ratio`` times the best level (the running minimum of the median of 3 points).

    - **jump** (warning): with too few points to know the noise, at least ``JUMP_AFTER_STEPS`` steps into the run,
      the median of the last 3 points at that ratio, ``CONFIRM_Z`` times the spread of the first differences above
      the best, giving back ``CONFIRM_GIVEN_BACK`` of the progress made (see ``Progress.needed``);
    - **confirmed** (critical): ``confirm_points`` consecutive such values spanning at least ``confirm_steps`` steps
      (single spikes never confirm), each giving back ``CONFIRM_GIVEN_BACK`` of the progress made (half of it while
      the loss still falls fast), the median of the last 3 ``CONFIRM_Z`` noise units above the best (the first
      differences' spread before the noise is known; from 3 of them), against a best the series **held**: its
      median of 3 stayed within the ratio of it for ``confirm_steps`` steps as well (a point holds until the next one
      comes, so one evaluation of a sparse curve can hold it). A low the series only touched (a few lucky batches; a
      DQN's TD loss in its first steps, before its targets grow with the returns it learns) is no level it diverged
      from: the climb away from it is left to the warnings. Not within the points muted after a scheduled LR rise,
      nor for a climb that took more than ``FAST_CLIMB_POINTS`` from half the ratio to the ratio (an objective that
      changes on purpose, a KL weight warming up, rises that slowly; divergences do not), nor for a step at an epoch's
      start (``EPOCH_STEP_POINTS``: a curriculum stage, mixup switched on) unless the level climbs on from it.

    Each re-arms once the level is back within half the ratio of its best.
    """

    STATE = (
        "best", "elevated_run", "elevated_since", "critical_armed", "jump_armed", "near_since", "held", "lowest",
        "blown_run", "mid_n", "climb", "epoch_step", "stepped_to", "stepped_n",
    )  # fmt: skip

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        self.level = level
        self.ratio, self.confirm_points, self.confirm_steps = (
            settings.divergence_ratio, settings.confirm_points, settings.confirm_steps
        )  # fmt: skip
        self.best, self.elevated_run, self.elevated_since = math.inf, 0, 0
        self.critical_armed, self.jump_armed = True, True
        self.near_since: int | None = None  # first step of the current stretch of levels within the ratio of the best
        self.held = 0  # steps the longest such stretch lasted since the best was set (to the first point out of it)
        self.lowest = math.inf  # the lowest short level of the run, an LR rise or not (see BLOWN_UP_RATIO)
        self.mid_n = 0  # the point count when the level was last within half the ratio of the best
        self.climb = 0  # points the latest climb took from there to the ratio
        self.blown_run = 0  # consecutive short levels BLOWN_UP_RATIO times above it
        self.epoch_step = False  # the level left the ratio of its best at an epoch's start (see EPOCH_STEP_POINTS)
        self.stepped_to = math.inf  # the highest level in that step's first points: the yardstick of a further climb
        self.stepped_n = 0  # the point count when it left
        self._steps: list[int] = []  # the steps of the last 3 points (not saved: refilled within 3 points)

    def on_lr_rise(self) -> None:
        self.best, self.elevated_run = math.inf, 0
        self.near_since, self.held = None, 0

    def read_state(self, state: Any) -> dict[str, Any]:
        if isinstance(state, Mapping) and "near_since" not in state and "held" not in state:
            # Saved before the held best: the series holds no best yet (a climb warns; a stop waits for a held best).
            state = {**state, "near_since": None, "held": 0}
        if isinstance(state, Mapping) and "lowest" not in state and "blown_run" not in state:
            state = {**state, "lowest": math.inf, "blown_run": 0}  # saved before the blow-up check: none seen yet
        if isinstance(state, Mapping) and "mid_n" not in state and "climb" not in state:
            state = {**state, "mid_n": 0, "climb": 0}  # saved before the climb's pace was kept: any climb counts
        if isinstance(state, Mapping) and "epoch_step" not in state:
            state = {**state, "epoch_step": False, "stepped_to": math.inf, "stepped_n": 0}  # saved before: no step
        return super().read_state(state)

    def carry_over(self, old: BlowUpRule) -> None:
        """The series switched to the raw scale: its best (on the new scale) and how long it held it stay true."""
        if math.isfinite(old.best):
            self.best = self.level.sign * old.level.value_of(old.best)
        self.near_since, self.held = old.near_since, old.held

    def update(self, step: int, value: float, progress: Progress) -> list[Anomaly]:
        level, y = self.level, self.level.y
        short = short_level(level)
        self._steps = [*self._steps[-2:], step]
        best_before = self.best
        candidate = best_candidate(level)
        if candidate is not None and candidate < self.best:
            self.best = candidate
        was_near = self.near_since is not None
        self._hold(step, short, new_best=self.best < best_before)
        self._follow_epoch_step(step, short, left=was_near and self.near_since is None)
        best_value = level.value_of(best_before)
        # On the raw scale (a loss that reached 0 or went below it) a ratio to the best means nothing: a rise is
        # measured against the progress the series made, and one that made none (a policy-gradient loss climbing from
        # -0.75 to -0.36 as its returns grow) has no yardstick for a divergence.
        measurable = level.log_scale or progress.made
        elevated = (
            measurable and math.isfinite(best_before) and y - best_before >= level.least_rise(self.ratio, best_before)
        )
        counts = elevated and progress.given_back(y) >= progress.needed(CONFIRM_GIVEN_BACK[level.mode])
        self.elevated_run = self.elevated_run + 1 if counts else 0
        if self.elevated_run == 1:
            self.elevated_since = step
            self.climb = level.n - self.mid_n  # points the level took from half the ratio to the ratio
        if math.isfinite(self.best) and short - self.best <= level.rise(self.ratio, self.best) / 2:
            self.mid_n = level.n
        if not elevated and short - self.best < level.rise(self.ratio, short) / 2:
            self.critical_armed = self.jump_armed = True
        events: list[Anomaly] = []
        if (
            self.jump_armed
            and measurable
            and len(level.diffs) < MIN_DIFFS
            and self._jumped(step, short, best_before, progress)
        ):
            # Too few points to know the noise (sparse evaluations): a jump this large is news.
            self.jump_armed = False
            # The jump is judged on the median of 3 (one point is no level): that is the rise the message quotes.
            jumped = level.value_of(short)
            text = jump_message(level.series, step, jumped, best_value, level.mode)
            events.append(Anomaly(KIND, step, "warning", text, level.series, ratio(jumped, best_value), value))
        if (
            self.elevated_run >= self.confirm_points
            and step - self.elevated_since >= self.confirm_steps
            and self.critical_armed
            and self.held >= self.confirm_steps
            and not level.after_lr_rise
            and self._stands_out(short, best_before)
            and self._fast_climb()
            and self._beyond_epoch_step(short)
        ):
            self.critical_armed = False
            text = confirmed_message(level.series, step, self.elevated_since, value, best_value, self.ratio, level.mode)
            events.append(Anomaly(KIND, step, "critical", text, level.series, ratio(value, best_value), value))
        elif self._blown_up(short) and self.critical_armed:
            self.critical_armed = False
            lowest = level.value_of(self.lowest)
            text = blown_up_message(level.series, step, self.blown_run, value, lowest)
            events.append(Anomaly(KIND, step, "critical", text, level.series, ratio(value, lowest), value))
        self.lowest = min(self.lowest, short) if math.isfinite(short) else self.lowest
        return events

    def _fast_climb(self) -> bool:
        """The latest climb went from half the ratio above the best to the ratio within ``FAST_CLIMB_POINTS``."""
        return self.climb <= FAST_CLIMB_POINTS

    def _follow_epoch_step(self, step: int, short: float, *, left: bool) -> None:
        """Note whether the median of 3 left the ratio of the best (``left``) with an epoch's first step among its
        points, and the highest level of its first ``EPOCH_STEP_POINTS`` points out; forget it once the series has held
        its best again for ``confirm_steps`` (a mix of easy and hard batches dips back near it now and then)."""
        n = self.level.n
        if left:
            starts = self.level.epoch_starts
            self.epoch_step = self._within_epochs() and any(self._steps[0] <= start <= step for start in starts)
            self.stepped_to, self.stepped_n = short, n
        elif self.epoch_step and n - self.stepped_n < EPOCH_STEP_POINTS:
            self.stepped_to = max(self.stepped_to, short)
        if self.near_since is not None and step - self.near_since >= self.confirm_steps:
            self.epoch_step = False

    def _within_epochs(self) -> bool:
        """The series logs several points an epoch (the last 3 lie closer together than an epoch is long): only then
        can a rise be a step at an epoch's start. A validation loss logged once an epoch has an epoch's start among
        any 3 of its points: there the rule kept a steady climb from the first validation (2.35 -> 3.91 over 10
        epochs, the training loss at 0.002) from ever being confirmed."""
        starts = self.level.epoch_starts
        if len(starts) < 2 or len(self._steps) < 2:
            return True
        epoch = min(b - a for a, b in zip(starts, starts[1:], strict=False))
        return min(b - a for a, b in zip(self._steps, self._steps[1:], strict=False)) < epoch

    def _beyond_epoch_step(self, short: float) -> bool:
        """The latest climb was no step at an epoch's start, or the level has climbed on to the ratio times the level it
        stepped to (a divergence that began there): see ``EPOCH_STEP_POINTS``."""
        return not self.epoch_step or short - self.stepped_to >= self.level.rise(self.ratio, self.stepped_to)

    def _blown_up(self, short: float) -> bool:
        """A loss whose median of 3 has stood ``BLOWN_UP_RATIO`` times above the lowest it reached for
        ``confirm_points`` points in a row (counted here, every point)."""
        level = self.level
        far = (
            level.log_scale
            and level.mode == "min"
            and math.isfinite(self.lowest)
            and short - self.lowest >= math.log(BLOWN_UP_RATIO)
        )
        self.blown_run = self.blown_run + 1 if far else 0
        return self.blown_run >= self.confirm_points

    def _hold(self, step: int, short: float, *, new_best: bool) -> None:
        """Follow how long the series held its best: the longest stretch of steps, since the best was set, in which its
        median of 3 stayed within the ratio of the best, up to the step of the first point out of it (a point stands
        for the steps until the next one comes)."""
        near = math.isfinite(self.best) and short - self.best <= self.level.rise(self.ratio, self.best)
        if near and self.near_since is None:
            self.near_since = step
        if new_best:
            self.held = 0
        if self.near_since is not None:
            self.held = max(self.held, step - self.near_since)
        if not near:
            self.near_since = None

    def _stands_out(self, short: float, best: float) -> bool:
        """``short`` (the median of the last 3 points) stands ``CONFIRM_Z`` noise units (the first points' spread early
        on) above the best, plus the best's low bias: a single huge point cannot confirm a divergence."""
        level = self.level
        levels = max(level.n / 3.0, 1.0)  # roughly independent medians of 3 behind the best
        margin = CONFIRM_Z + SHORT_SPREAD * math.sqrt(2.0 * math.log(levels))
        return short - best >= margin * early_noise(level, best)

    def _jumped(self, step: int, short: float, best: float, progress: Progress) -> bool:
        """The median of the last 3 points jumped to the ratio, out of the noise, back above the start of the descent,
        late enough in the run."""
        level = self.level
        first = level.first_step if level.first_step is not None else step
        return (
            math.isfinite(best)
            and step - first >= JUMP_AFTER_STEPS
            and short - best >= level.least_rise(self.ratio, best)
            and self._stands_out(short, best)
            and progress.given_back(short) >= progress.needed(CONFIRM_GIVEN_BACK[level.mode])
        )


def jump_message(series: str, step: int, value: float, best: float, mode: str = "min") -> str:
    """The warning of a jump: ``value`` is the median of the last 3 points at ``step`` (the level judged; the point
    logged at ``step`` may lie far from it), said as such."""
    where = f"{value:.4g} (the median of its last 3 points) at step {step}, {times(value, best, 'its best')}"
    if mode == "max":  # a score: worse is lower
        return (
            f"{series} fell to {where}. If the next values stay this low the run has diverged: lower the LR or add "
            "warmup and gradient clipping."
        )
    return (
        f"{series} jumped to {where}. If the next values stay this high the run has diverged: lower the LR or add "
        "warmup and gradient clipping."
    )


def confirmed_message(
    series: str, step: int, since: int, value: float, best: float, ratio: float, mode: str = "min"
) -> str:
    if mode == "max":
        where = f"below 1/{ratio:.2g} of its best" if best > 0 else "well below its best"
    else:
        where = f"above {ratio:.2g}x its best" if best > 0 else "well above its best"
    return (
        f"{series} diverged: since step {since} it has stayed {where} ({best:.4g}); it is "
        f"{value:.4g} at step {step}. Stop, resume from a checkpoint before step {since} (about 100 steps "
        "earlier), skip the batches in between, and lower the LR by a third or more."
    )


def blown_up_message(series: str, step: int, points: int, value: float, lowest: float) -> str:
    return (
        f"{series} blew up: its last {points} levels stand over {BLOWN_UP_RATIO:.0e} times the lowest it reached "
        f"({lowest:.4g}); it is {value:.4g} at step {step}. Stop, lower the LR (a tenth is a common first try) or add "
        "gradient clipping and a longer warmup, and restart from a checkpoint before the climb."
    )


def early_noise(level: SeriesLevel, y: float) -> float:
    """The per-point noise near ``y``: the level's once it knows it (``MIN_DIFFS`` differences); before, from
    ``MIN_PROXY_DIFFS`` differences on, their root mean square leaving out the largest (the jump being judged), over
    sqrt 2; inf with fewer (nothing stands out of a noise not seen yet).

    Not centred and not robust, on purpose: a MAD of 3-7 differences is often near 0 by chance (a DQN loss at 1e-4,
    then 40x higher: a MAD-based noise of 0.8 in log units against a spread of 2), and a steep early fall only makes
    this larger, so that fewer of a short curve's first points count as a jump.
    """
    diffs = level.diffs
    if len(diffs) >= MIN_DIFFS:
        return level.noise(y)
    if len(diffs) < MIN_PROXY_DIFFS:
        return math.inf
    squares = sorted(d * d for d in diffs)[:-1]
    return max(math.sqrt(sum(squares) / len(squares) / 2.0), level.noise_floor(y))
