"""Reference runs: finished curves of the same recipe, whose shape informs the forecast of a run in progress.

Curves of one recipe collapse onto one shape once progress is measured as a fraction of the run (Qiu et al. 2025):
the ratio of the final value to the value at the same fraction of the run varies far less between seeds and trials
than any law fitted to a short prefix. A ``ReferenceMember`` joins the ensemble with that forecast: the median over
references of (the run's level relative to the reference now) times (the reference at each later fraction), all in
the falling space of ``metric_map.py``. The relative level is the mean log ratio over the run's latest
``ANCHOR_WINDOW`` of observed points, read at those very points, so runs that share a data order share its
batch-to-batch noise and the ratio cancels it. The member competes on the held-back tail like every other member
(with the prior weight ``calibration.REFERENCE_WEIGHT``), so references of another recipe lose their say on their
own. Progress is measured as the fraction of the LR area when both the reference and the run give their schedules
(runs of different lengths then line up by their decay), and as the fraction of steps otherwise.

A reference costs the same whatever its run's length. One read from a log keeps at most ``MAX_REFERENCE_POINTS``
points (:meth:`Reference.bounded`: means of the points in bins of steps) and its LR as knots (an ``LRSchedule``), never
one LR per step; and what a shape needs that no metric map changes (the bins, their smoothing, the LR-area fractions)
is computed once per reference, at its first forecast, so each later forecast costs O(bins) per reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from curvecast.forecasting.metric_map import MetricMap
from curvecast.forecasting.preprocess import Binned, bin_curve
from curvecast.forecasting.real_values import real_array
from curvecast.forecasting.schedule import LRSchedule

__all__ = [
    "MAX_REFERENCES",
    "MAX_REFERENCE_POINTS",
    "Reference",
    "ReferenceMember",
    "ReferenceShape",
    "check_references",
    "grid_bins",
    "reference_shape",
]

# References a live run keeps, the latest first: each costs every fit an interpolation, and a recipe drifts over a
# sweep, so the newest runs say most about the next one.
MAX_REFERENCES = 16
# A reference needs this many finite points to define a shape.
MIN_REFERENCE_POINTS = 5
# The run's level relative to a reference: over this last fraction of the observed steps (at least 3 bins).
ANCHOR_WINDOW = 0.2
# A reference is smoothed by local lines over +-SMOOTH_WIDTH of the run (one-sided at its ends): its last points
# carry batch-to-batch noise, and the forecast is of the smoothed metric. A window with fewer than SMOOTH_POINTS
# points keeps the point as it is (a line through a sparse evaluation curve bends it more than it smooths it).
SMOOTH_WIDTH = 0.05
SMOOTH_POINTS = 8
# Points a reference read from a log keeps (Reference.bounded), about 16 per bin of a forecast (max_bins 256): a
# few thousand logged rows are kept as they are, whatever step they reach.
MAX_REFERENCE_POINTS = 4096


def grid_bins(steps: np.ndarray, last_step: float, n_bins: int) -> np.ndarray:
    """The bin of each of ``steps`` (in ``0..last_step``) in a grid of at most ``n_bins`` bins, each narrower than
    both a log-spaced and an evenly spaced bin of about ``2 / n_bins`` of the run: a forecast reads a reference in
    even fractions of its run (``bin_curve``), and early in a run at small fractions of it.

    Example:
        >>> grid_bins(np.array([0, 1, 2, 500, 501, 1000]), 1000, 8).tolist()
        [0, 0, 0, 5, 5, 7]
    """
    half = max(n_bins // 2, 1)
    s = np.maximum(np.asarray(steps, dtype=np.float64), 0.0)
    end = max(float(last_step), 1.0)
    key = np.floor(half * np.log1p(s) / math.log1p(end) + half * (s / end))
    return np.minimum(key, n_bins - 1).astype(np.int64)


@dataclass(frozen=True)
class Reference:
    """A finished run of the same recipe: its ``steps``, the metric's ``values``, and optionally its planned LRs.

    Args:
        steps: increasing steps, the last one the run's end.
        values: the metric at those steps (non-finite values are dropped).
        lrs: optional LR of every step 0..steps[-1], as an array or an ``LRSchedule`` of that horizon (a long run's in
            knots); with the forecast run's own, progress is the LR-area fraction.
        counts: optional number of raw points averaged into each value (1 each by default).
    """

    steps: np.ndarray
    values: np.ndarray
    lrs: np.ndarray | LRSchedule | None = None
    counts: np.ndarray | None = None
    # Bins of the shape by bin count, computed at the first forecast (see the module's note).
    _prepared: dict[int, _Prepared] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        s = real_array(self.steps, "steps")
        v = real_array(self.values, "values")
        if s.ndim != 1 or v.ndim != 1 or len(s) != len(v):
            raise ValueError(f"`Reference` steps and values must be 1-D of one length, but got {s.shape}, {v.shape}")
        if not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0) or (len(s) and s[0] < 0):
            raise ValueError("`Reference` steps must be finite, non-negative and increasing")
        n = int(np.isfinite(v).sum())
        if n < MIN_REFERENCE_POINTS:
            raise ValueError(f"`Reference` must hold at least {MIN_REFERENCE_POINTS} finite values, but got {n}")
        lr = self.lrs
        if isinstance(lr, LRSchedule):
            if len(lr) != int(s[-1]) + 1:
                raise ValueError(
                    f"`Reference` lrs must cover steps 0..{int(s[-1])}, but the schedule covers 0..{lr.horizon}"
                )
        elif lr is not None:
            lr = real_array(lr, "lrs")
            if lr.ndim != 1 or len(lr) != int(s[-1]) + 1 or not np.all(np.isfinite(lr) & (lr >= 0)):
                raise ValueError(
                    f"`Reference` lrs must hold one finite LR >= 0 per step 0..{int(s[-1])}, but got shape {lr.shape}"
                )
        c = self.counts
        if c is not None:
            c = real_array(c, "counts")
            if c.shape != v.shape or not np.all(np.isfinite(c) & (c > 0)):
                raise ValueError(f"`Reference` counts must be one positive number per value, but got shape {c.shape}")
        object.__setattr__(self, "steps", s)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "lrs", lr)
        object.__setattr__(self, "counts", c)

    @classmethod
    def bounded(
        cls,
        steps: np.ndarray,
        values: np.ndarray,
        lrs: np.ndarray | LRSchedule | None = None,
        max_points: int = MAX_REFERENCE_POINTS,
    ) -> Reference:
        """A reference of at most ``max_points`` points: the finite values before the last point averaged in the bins
        of :func:`grid_bins` (with their counts), the last point, the run's end, kept as it is. A curve of at most
        ``max_points`` points is kept whole.

        Example:
            >>> ref = Reference.bounded(np.arange(50_000_001, step=1000), np.linspace(5, 1, 50_001), max_points=64)
            >>> len(ref.steps), int(ref.counts.sum()), float(ref.steps[-1])
            (52, 50001, 50000000.0)
        """
        s = np.asarray(steps, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        if max_points < MIN_REFERENCE_POINTS + 1:
            raise ValueError(f"`max_points` must be at least {MIN_REFERENCE_POINTS + 1}, but got {max_points}")
        if s.ndim != 1 or len(s) != len(v) or len(s) <= max_points:
            return cls(s, v, lrs)  # checked there
        head = np.isfinite(v[:-1])
        hs, hv = s[:-1][head], v[:-1][head]
        if len(hs) < MIN_REFERENCE_POINTS:  # next to nothing to average: the finite points as they are
            return cls(np.r_[hs, s[-1]], np.r_[hv, v[-1]], lrs)
        keys = grid_bins(hs, s[-1], max_points - 1)
        edges = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        counts = np.add.reduceat(np.ones_like(hs), edges)
        mean_steps = np.clip(np.add.reduceat(hs, edges) / counts, hs[edges], hs[np.r_[edges[1:], len(hs)] - 1])
        means = np.add.reduceat(hv, edges) / counts
        return cls(np.r_[mean_steps, s[-1]], np.r_[means, v[-1]], lrs, counts=np.r_[counts, 1.0])

    def prepared(self, max_bins: int) -> _Prepared:
        """The shape's parts no metric map changes, for ``max_bins`` bins: computed once, then kept."""
        prep = self._prepared.get(max_bins)
        if prep is None:
            with np.errstate(all="ignore"):
                prep = _prepare(self, max_bins)
            self._prepared[max_bins] = prep
        return prep


def check_references(references: Sequence[Reference] | None) -> list[Reference]:
    """The references as a list, or a ValueError naming what is not a ``Reference``."""
    if references is None:
        return []
    out = list(references)
    for r in out:
        if not isinstance(r, Reference):
            raise ValueError(f"Expected `references` to hold `Reference` objects, but got {type(r).__name__}")
    return out


@dataclass(frozen=True)
class ReferenceShape:
    """One reference in the falling space: smoothed ``y`` at step fractions ``frac`` (and LR-area fractions)."""

    frac: np.ndarray
    y: np.ndarray
    counts: np.ndarray
    area_frac: np.ndarray | None = None


@dataclass(frozen=True)
class _Prepared:
    """A reference's bins in the metric's own units: step fractions, mean ``values`` and their local lines
    (``smooth``), ``counts``, LR-area fractions, and the lowest and highest finite value (``extremes``). The metric map
    is affine, so mapping these gives the bins of the mapped values."""

    frac: np.ndarray
    values: np.ndarray
    smooth: np.ndarray
    counts: np.ndarray
    area_frac: np.ndarray | None
    extremes: np.ndarray


def _prepare(ref: Reference, max_bins: int) -> _Prepared:
    ok = np.isfinite(ref.values)
    v = ref.values[ok]
    counts = ref.counts[ok] if ref.counts is not None else np.ones_like(v)
    binned = bin_curve(ref.steps[ok], v, counts, max_bins)
    frac = binned.steps / max(float(ref.steps[-1]), 1.0)
    area = None
    if isinstance(ref.lrs, LRSchedule):
        if ref.lrs.peak_lr > 0:
            area = ref.lrs.area(binned.steps) / ref.lrs.area(np.array([float(ref.lrs.horizon)]))[0]
    elif ref.lrs is not None and ref.lrs.max() > 0:
        cum = np.cumsum(ref.lrs)
        area = np.interp(binned.steps, np.arange(len(cum)), cum) / cum[-1]
    smooth = _local_lines(frac, binned.values, binned.counts, SMOOTH_WIDTH)
    return _Prepared(frac, binned.values, smooth, binned.counts, area, np.array([v.min(), v.max()]))


def reference_shape(ref: Reference, mapping: MetricMap, max_bins: int) -> ReferenceShape | None:
    """The reference's smoothed shape in the run's falling space, or None where it leaves that space (y <= 0).

    O(max_bins): the bins are the reference's own, computed at its first forecast (``Reference.prepared``).
    """
    prep = ref.prepared(max_bins)
    ends = mapping.to_y(prep.extremes)
    if np.any(ends <= 0) or not np.all(np.isfinite(ends)):  # past this run's floor: its ratios would mean nothing here
        return None
    y = mapping.to_y(prep.values)
    y_smooth = np.maximum(mapping.to_y(prep.smooth), 1e-3 * y)
    if not np.all(np.isfinite(y_smooth)):
        return None
    return ReferenceShape(prep.frac, y_smooth, prep.counts, prep.area_frac)


class ReferenceMember:
    """The ensemble member built from reference shapes, anchored on the run's level at the end of ``data``.

    Args:
        shapes: the references' shapes (``reference_shape``).
        horizon: the run's planned last step.
        data: the binned observed curve (falling space) the member is anchored on.
        schedule: the run's planned LR schedule, or None (progress is then the step fraction).
    """

    name = "reference"
    anneal_sd = 0.0

    def __init__(
        self, shapes: list[ReferenceShape], horizon: int, data: Binned, schedule: LRSchedule | None = None
    ) -> None:
        self.horizon = float(max(horizon, 1))
        self.schedule = schedule
        t, y, c = data.steps, data.values, data.counts
        window = t >= t[-1] - ANCHOR_WINDOW * (t[-1] - t[0])
        if window.sum() < 3:
            window = np.zeros_like(window)
            window[-3:] = True
        self.window_steps, self.window_values, self.window_counts = t[window], y[window], c[window]
        self.shapes = shapes

    def _frac(self, t: np.ndarray, area: bool) -> np.ndarray:
        if area and self.schedule is not None:
            return self.schedule.area(t) / max(float(self.schedule.area(np.array([self.horizon]))[0]), 1e-300)
        return t / self.horizon

    def __call__(self, t: np.ndarray) -> np.ndarray:
        each = self.each(t)
        return np.median(each, axis=0) if len(each) else np.full(np.shape(t), math.nan)

    def each(self, t: np.ndarray) -> np.ndarray:
        """Each reference's forecast at ``t`` (one row per reference that shows the run's latest part): where they
        disagree (a directory of other recipes), the forecast is as unsure as their spread says."""
        t = np.asarray(t, dtype=np.float64)
        ratios = []
        for sh in self.shapes:
            area = sh.area_frac is not None and self.schedule is not None
            frac = sh.area_frac if area else sh.frac
            # The run's level relative to the reference: the mean log ratio at the run's own window points (those the
            # reference covers), so noise the runs share (one data order) cancels.
            f_win = self._frac(self.window_steps, area)
            seen = (f_win >= frac[0]) & (f_win <= frac[-1])
            if not seen.any():  # the reference does not show this part of the run: no ratio to take
                continue
            w, f_seen = self.window_counts[seen], f_win[seen]
            log_ratio = np.log(self.window_values[seen]) - np.log(np.interp(f_seen, frac, sh.y))
            level = float(np.exp(np.average(log_ratio, weights=w)))
            ratios.append(level * np.interp(self._frac(t, area), frac, sh.y))
        return np.stack(ratios) if ratios else np.empty((0, *t.shape))

    def describe(self) -> str:
        lo, hi = self.window_steps[0], self.window_steps[-1]
        return f"reference(n={len(self.shapes)}; anchored on steps {lo:g}..{hi:g})"


def _local_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray, width: float) -> np.ndarray:
    """Weighted least-squares lines through the points within ``width`` of each x, evaluated there (O(n log n))."""
    xc = x - x.mean()
    sums = [np.concatenate([[0.0], np.cumsum(w * v)]) for v in (np.ones_like(x), xc, xc * xc, y, xc * y)]
    lo = np.searchsorted(x, x - width, side="left")
    hi = np.searchsorted(x, x + width, side="right")
    s0, s1, s2, sy, sxy = (c[hi] - c[lo] for c in sums)
    den = s0 * s2 - s1 * s1
    ok = den > 1e-12 * np.maximum(s0 * s2, 1e-300)
    sparse = hi - lo < SMOOTH_POINTS  # too few points for a line to smooth more than it bends: keep the point

    slope = np.where(ok, (s0 * sxy - s1 * sy) / np.where(ok, den, 1.0), 0.0)
    mean_x, mean_y = s1 / s0, sy / s0
    return np.where(sparse, y, mean_y + slope * (xc - mean_x))
