"""SeriesLevel: what every check of one series reads: its scale, its recent points, its noise and its local baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from curvecast.forecasting.anomalies.progress import Progress
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.sorted_window import SortedWindow
from curvecast.forecasting.anomalies.state import Stateful
from curvecast.forecasting.anomalies.stats import median, push, sigma_of_diffs
from curvecast.forecasting.anomalies.tail_stats import TailStats
from curvecast.state_checks import checked_real, checked_reals, checked_whole

if TYPE_CHECKING:
    from curvecast.forecasting.schedule import LRSchedule

__all__ = ["BASELINE_POINTS", "MIN_DIFFS", "Score", "SeriesLevel"]

# Points kept for levels: the drift baseline (32), the slowdown level (30), projections (7), and the scatter (64: it
# must reach back past the best level a climb is measured from, which can lie 54 points back).
RECENT = 64
BASELINE_POINTS = 32  # the latest points whose median is the drift baseline (the gradient norm's level too)
SLOPE_DIFFS = 16  # accepted first differences behind the local slope
SHORT_DIFFS = 32  # accepted first differences behind the recent noise
PROJECT = 7  # recent points projected to the next step; their median is the spike baseline
MIN_DIFFS = 8  # accepted first differences before the noise is known (no point is scored before)
LR_RISE_MUTE = 8  # points muted after a scheduled LR rise
EPOCH_STARTS_KEPT = 4  # a climb is judged within a few points of its start: older epoch starts are never read
RAW_SIZE_FLOOR = 0.01  # on the raw scale, changes are measured against at least 1% of the largest |value| seen
# The spike baseline stays within this many noise units below the lowest of the last 7 points. Half a unit: the clean
# labelled curves' false spike alarms fall from 14 to 4 (none of the floor: 14; at the lowest point itself: 4, but
# 2 of the 2,457 injected spikes lost; one unit: 5), the injected spikes caught stay at 96.2%.
FLOOR_SLACK = 0.5
# The alarm warmup (``warmup_points``) is for the first steps of a run; a sparse series (an evaluation every epoch, a
# loss logged every 50 steps) is past them once its points span this many steps: its 20th point may come at the end.
WARMUP_SPAN_STEPS = 200
# On the raw scale (a loss at or through zero) a climb or a jump must rise this many times the recent points' scatter
# (``scatter``), whatever ratio it makes: near zero a ratio means nothing. A REINFORCE surrogate on a bandit, wobbling
# about 0 with no return logged, was warned of climbs in 4 of 12 seeds ("0.0328 at step 489 (median of the last 7
# points) against -0.1416 before"): rises of 0.3-2.6 scatters, a median of 7 jumping from a burst of negative batches
# back to the greedy ones near 0. A climb of 0.004 a step out of such noise is still warned within 50 steps
# (tests/forecasting/test_near_zero_climbs.py). The log scale, where the ratio tests hold, is left as it was.
CLEAR_SCATTERS = 3.0
# An outlier within this many points of the previous one is the series' own noise getting larger (a steep fall landing
# on a noisy floor, small batches): its difference enters the noise, which thus catches up, and its spike is a note.
CROWDED_POINTS = 5


class Score(NamedTuple):
    """How the latest point stands against the local baseline, on the scoring scale."""

    expected: float  # the baseline projected to the point's step
    noise: float  # the per-point noise it was judged by
    z: float  # (y - expected) / noise
    stands_out: bool  # at least `spike_min_rise` above the baseline
    outlier: bool  # z above `spike_z` as well: kept out of the noise


class SeriesLevel(Stateful):
    """The shared state of one series: the checks read it, only the detector writes it.

    Values are scored on the log scale (the noise of a loss is roughly multiplicative), switching to the raw scale
    for good if a value <= 0 arrives, and sign-flipped for ``mode="max"`` so that higher is always worse. Each point
    is scored against a robust local baseline: the median of the last 7 points projected forward by the median of
    the last 16 accepted first differences, with the noise taken as 1.4826 MAD of up to ``window_points`` accepted
    differences. Outliers (z above ``spike_z``) stay out of the differences, unless more than ``persist_points`` come
    in a row (a level shift, not a spike). Every window has a fixed size: an update is O(1) and memory is bounded.

    Attributes (read-only outside the detector; :meth:`noise` and :meth:`refresh_noise` only refresh the cached noise):
        series, mode, log_scale: the name of the series, ``"min"`` or ``"max"``, and the scale of scoring.
        schedule: the planned LR of the run, when known.
        n: finite points seen; first_step, last_step: the first and latest step seen (non-finite ones included).
        y: the latest point on the scoring scale; score: its :class:`Score`, None before the noise is known.
        recent: the last 64 points on the scoring scale (emptied by a scheduled LR rise).
        diffs: the last ``window_points`` accepted first differences.
        sigma, sigma_short: the noise of all of ``diffs`` and of the last 32 (refreshed every 4 accepted points).
        last_z: the z of the latest point (NaN before the noise is known).
    """

    STATE = (
        "n", "n_accepted", "first_step", "last_step", "log_scale", "recent", "diffs", "last_accepted", "mute_until",
        "outlier_run", "last_z", "sigma", "sigma_short", "magnitude", "last_outlier_n",
    )  # fmt: skip

    def __init__(
        self,
        series: str,
        *,
        mode: str,
        log_scale: bool,
        settings: DetectorSettings,
        schedule: LRSchedule | None = None,
    ) -> None:
        self.series, self.mode, self.log_scale, self.schedule = series, mode, log_scale, schedule
        self.sign = 1.0 if mode == "min" else -1.0
        self.outlier_z, self.min_rise = settings.spike_z, settings.spike_min_rise
        self.persist_points, self.window_points = settings.persist_points, settings.window_points
        self.warmup_points = settings.warmup_points
        self.n, self.n_accepted = 0, 0
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.recent: list[float] = []
        self.diffs: list[float] = []
        self.last_accepted: float | None = None
        self.mute_until, self.outlier_run = 0, 0
        self.last_z, self.sigma, self.sigma_short = math.nan, math.nan, math.nan
        self._noise_at = -1  # `n_accepted` when the noise was last computed (not saved: a restored level recomputes)
        self.magnitude = 0.0  # the largest |value| seen on the raw scale: what "near zero" is measured against
        # The first steps of the latest epochs, as the Trainer told them (not saved: a resumed run is told anew).
        self.epoch_starts: list[int] = []
        self.last_outlier_n = -(10**9)  # the point count at the latest outlier
        # The medians and noises of the tails of `recent` and `diffs` that several checks read (not saved: cleared
        # whenever the window changes).
        self._recent_stats, self._diff_stats = TailStats(), TailStats()
        self._sorted_diffs = SortedWindow()  # `diffs` in sorted order, for the noise (not saved: rebuilt on load)
        self.progress = Progress(self)  # how far the series has come (its own state, nested in this one's)
        self.crowded = False  # the latest point is an outlier close after another (recomputed by every update)
        # The latest point and its score: recomputed by every update before any check reads them, so never saved.
        self.y = math.nan
        self.score: Score | None = None

    # --- what the detector writes ------------------------------------------------------------------------------------
    def enter(self, step: int) -> None:
        """Note the step of a new value, finite or not."""
        self.last_step = step
        if self.first_step is None:
            self.first_step = step

    def epoch_started(self, step: int) -> None:
        """An epoch starts at optimizer step ``step`` (the last few are kept)."""
        self.epoch_starts = [*self.epoch_starts[-(EPOCH_STARTS_KEPT - 1) :], int(step)]

    def absorb(self, value: float, *, lr_rose: bool) -> None:
        """Take a finite value (positive on the log scale): score it, then add it to the recent points and, unless it
        is an outlier, its difference to the noise. ``lr_rose``: the planned LR rose since the previous step."""
        y = self.sign * (math.log(value) if self.log_scale else value)
        self.y = y
        self.n += 1
        if not self.log_scale:
            self.magnitude = max(self.magnitude, abs(y))
        if lr_rose:
            # The levels start afresh (the noise scale is kept: the LR changes the level more than the noise).
            self.mute_until, self.recent = self.n + LR_RISE_MUTE, []
            self.progress.on_lr_rise()
        self.score = self._score(y)
        push(self.recent, y, RECENT)
        self._recent_stats.clear()
        self.progress.update()
        outlier = self.score is not None and self.score.outlier
        self.crowded = outlier and self.n - self.last_outlier_n <= CROWDED_POINTS
        if outlier:
            self.last_outlier_n = self.n
        if not outlier or self.crowded or self.outlier_run >= self.persist_points:
            if self.last_accepted is not None:
                diff = y - self.last_accepted
                dropped = self.diffs[0] if len(self.diffs) >= self.window_points else None
                push(self.diffs, diff, self.window_points)
                self._sorted_diffs.add(diff, dropped)
                self._diff_stats.clear()
            self.last_accepted = y
            self.n_accepted += 1

    def _score(self, y: float) -> Score | None:
        if len(self.diffs) < MIN_DIFFS or not self.recent:
            self.last_z = math.nan
            return None
        slope = self.diffs_median(SLOPE_DIFFS)
        tail = self.recent[-PROJECT:]
        projected = median([v + (len(tail) - i) * slope for i, v in enumerate(tail)])
        # Never far below the lowest recent point: while a steep fall slows (the early transient) the slope of the
        # last 16 differences overshoots, and the next point would stand out of a baseline it never left.
        expected = max(projected, min(tail) - FLOOR_SLACK * self.noise(projected))
        noise = self.noise(expected)
        z = (y - expected) / noise
        self.last_z = z
        stands_out = y - expected >= self.rise(1.0 + self.min_rise, expected)
        outlier = z > self.outlier_z and stands_out
        # Consecutive outliers beyond `persist_points` are a level shift, not a spike: they enter the noise.
        self.outlier_run = self.outlier_run + 1 if outlier else 0
        return Score(expected, noise, z, stands_out, outlier)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "progress": self.progress.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`, every field checked first (its kind, then the bounds the
        fields set each other): a damaged state raises ``KeyError``, ``TypeError`` or ``ValueError`` and changes
        nothing."""
        values = self.read_state(state)
        if "progress" not in state:
            raise KeyError("`state` of the SeriesLevel lacks the keys ['progress']")
        progress = self.progress.read_state(state["progress"])
        _check_bounds(values, self.window_points)
        self.set_state(values)
        self.progress.set_state(progress)

    def set_state(self, values: Mapping[str, Any]) -> None:
        super().set_state(values)
        self._noise_at = -1
        self._sorted_diffs = SortedWindow(self.diffs)
        self._recent_stats.clear()
        self._diff_stats.clear()

    def carry_over(self, old: SeriesLevel) -> None:
        """Start the raw scale from the recent points of ``old``, this series on the log scale until a value <= 0
        came: the levels (medians of the last points) and the progress made carry on; the noise is learnt anew on the
        new scale."""

        def convert(y: float) -> float:
            return self.sign * old.value_of(y) if math.isfinite(y) else y

        self.recent = [convert(y) for y in old.recent]
        self.epoch_starts = list(old.epoch_starts)
        self._recent_stats.clear()
        self.magnitude = max((abs(y) for y in self.recent), default=0.0)
        self.progress.carry_over(old.progress, convert)

    # --- what the checks read ----------------------------------------------------------------------------------------
    @property
    def in_warmup(self) -> bool:
        """Within the first ``warmup_points`` points: no spike or divergence alarm yet."""
        return self.n <= self.warmup_points

    @property
    def after_lr_rise(self) -> bool:
        """Within the points muted after a scheduled LR rise (warmup, warm restarts)."""
        return self.n <= self.mute_until

    @property
    def muted(self) -> bool:
        """Spike and divergence alarms wait: the first ``warmup_points`` points (unless they span
        ``WARMUP_SPAN_STEPS`` steps already: a sparse series), or just after a scheduled LR rise."""
        first, last = self.first_step, self.last_step
        spread = last - first if first is not None and last is not None else 0
        return (self.n <= self.warmup_points and spread < WARMUP_SPAN_STEPS) or self.n <= self.mute_until

    def recent_median(self, points: int) -> float:
        """The median of the last ``points`` points (fewer when fewer are kept), on the scoring scale (once per point:
        the checks share it)."""
        return self._recent_stats.median(self.recent, points)

    def diffs_median(self, points: int) -> float:
        """The median of the last ``points`` accepted differences (once per accepted point)."""
        return self._diff_stats.median(self.diffs, points)

    def diffs_noise(self, points: int) -> float:
        """The noise of the last ``points`` accepted differences (:func:`sigma_of_diffs`; once per accepted point)."""
        return self._diff_stats.noise(self.diffs, points)

    def refresh_noise(self) -> None:
        """Recompute ``sigma`` and ``sigma_short`` every 4 accepted points (needs ``MIN_DIFFS`` differences)."""
        due = self.n_accepted % 4 == 0 and self.n_accepted != self._noise_at
        if not self.sigma >= 0.0 or due:
            # The MAD of 128 differences is most of the cost of an update; the noise moves slowly. Once per accepted
            # point at most: the differences change only when a point is accepted, and an update reads the noise
            # several times.
            self._noise_at = self.n_accepted
            sigma = self._sorted_diffs.sigma()  # a sort-free sigma_of_diffs(self.diffs), where it has one
            self.sigma = sigma if sigma is not None else sigma_of_diffs(self.diffs)
            self.sigma_short = sigma_of_diffs(self.diffs[-SHORT_DIFFS:])

    def noise_floor(self, y: float) -> float:
        """The least noise a point near ``y`` is judged by."""
        return 0.002 if self.log_scale else 0.002 * self._raw_size(y) + 1e-12  # quantised logs give MAD 0

    def noise(self, y: float) -> float:
        """The per-point noise near ``y``, on the scoring scale (refreshes it first)."""
        self.refresh_noise()
        # The noise of a stretch can rise within a run (bursts): the larger of the long and the recent noise.
        return max(self.sigma, self.sigma_short, self.noise_floor(y))

    def rise(self, ratio: float, y: float) -> float:
        """How far above ``y`` lies ``ratio`` times its value, on the scoring scale."""
        return math.log(ratio) if self.log_scale else (ratio - 1.0) * self._raw_size(y)

    def scatter(self) -> float:
        """The point-to-point scatter of the recent points, on the scoring scale (:func:`stats.scatter`; 0.0 with fewer
        than 6 of them, as just after a scheduled LR rise)."""
        return self._recent_stats.scatter(self.recent)

    def least_rise(self, ratio: float, y: float) -> float:
        """The least rise above ``y`` a climb or jump may quote: ``ratio`` times its value (:meth:`rise`), and on the
        raw scale at least ``CLEAR_SCATTERS`` times the recent scatter: a loss near zero is judged by its distance
        against its own noise, a ratio to a level near 0 being any number at all."""
        rise = self.rise(ratio, y)
        return rise if self.log_scale else max(rise, CLEAR_SCATTERS * self.scatter())

    def _raw_size(self, y: float) -> float:
        """The size a relative change near ``y`` is taken of, on the raw scale.

        ``|y|`` itself, but never below a hundredth of the largest value seen: a loss at or near zero (or one crossing
        it, a Gaussian NLL) would otherwise make any speck of noise a many-fold rise.
        """
        return max(abs(y), RAW_SIZE_FLOOR * self.magnitude)

    def value_of(self, y: float) -> float:
        """The value of the series at ``y`` on the scoring scale."""
        y = self.sign * y
        return math.exp(y) if self.log_scale else y


def _check_bounds(values: dict[str, Any], window_points: int) -> None:
    """The bounds the fields of a saved level set each other (``values``: read by ``read_state``; the steps and the
    last accepted point are made ints and floats here)."""

    def field(name: str) -> str:
        return f"`SeriesLevel.{name}`"

    n = values["n"]
    for name in ("first_step", "last_step"):
        if values[name] is not None:
            values[name] = checked_whole(field(name), values[name])
    first, last = values["first_step"], values["last_step"]
    if (first is None) != (last is None) or (first is not None and first > last):
        raise ValueError(f"Expected {field('first_step')} <= {field('last_step')}, both None or neither, but got "
                         f"{first!r} and {last!r}")  # fmt: skip
    if values["last_accepted"] is not None:
        values["last_accepted"] = checked_real(field("last_accepted"), values["last_accepted"])
    values["n_accepted"] = checked_whole(field("n_accepted"), values["n_accepted"], low=0, high=n)
    values["outlier_run"] = checked_whole(field("outlier_run"), values["outlier_run"], low=0, high=n)
    values["last_outlier_n"] = checked_whole(field("last_outlier_n"), values["last_outlier_n"], high=n)
    values["mute_until"] = checked_whole(field("mute_until"), values["mute_until"], low=0, high=n + LR_RISE_MUTE)
    for name in ("sigma", "sigma_short"):  # NaN: not known yet
        values[name] = checked_real(field(name), values[name], low=0.0, allow=(math.nan,))
    values["magnitude"] = checked_real(field("magnitude"), values["magnitude"], low=0.0)
    values["recent"] = checked_reals(field("recent"), values["recent"], max_len=RECENT)
    values["diffs"] = checked_reals(field("diffs"), values["diffs"], max_len=window_points)
