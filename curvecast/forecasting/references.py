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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curvecast.forecasting.metric_map import MetricMap
from curvecast.forecasting.preprocess import Binned, bin_curve
from curvecast.forecasting.schedule import LRSchedule

__all__ = ["MAX_REFERENCES", "Reference", "ReferenceMember", "ReferenceShape", "check_references", "reference_shape"]

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


@dataclass(frozen=True)
class Reference:
    """A finished run of the same recipe: its ``steps``, the metric's ``values``, and optionally its planned LRs.

    Args:
        steps: increasing steps, the last one the run's end.
        values: the metric at those steps (non-finite values are dropped).
        lrs: optional LR of every step 0..steps[-1]; with the forecast run's own, progress is the LR-area fraction.
    """

    steps: np.ndarray
    values: np.ndarray
    lrs: np.ndarray | None = None

    def __post_init__(self) -> None:
        s = np.asarray(self.steps, dtype=np.float64)
        v = np.asarray(self.values, dtype=np.float64)
        if s.ndim != 1 or v.ndim != 1 or len(s) != len(v):
            raise ValueError(f"`Reference` steps and values must be 1-D of one length, but got {s.shape}, {v.shape}")
        if not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0) or (len(s) and s[0] < 0):
            raise ValueError("`Reference` steps must be finite, non-negative and increasing")
        n = int(np.isfinite(v).sum())
        if n < MIN_REFERENCE_POINTS:
            raise ValueError(f"`Reference` must hold at least {MIN_REFERENCE_POINTS} finite values, but got {n}")
        lr = None
        if self.lrs is not None:
            lr = np.asarray(self.lrs, dtype=np.float64)
            if lr.ndim != 1 or len(lr) != int(s[-1]) + 1 or not np.all(np.isfinite(lr) & (lr >= 0)):
                raise ValueError(
                    f"`Reference` lrs must hold one finite LR >= 0 per step 0..{int(s[-1])}, but got shape {lr.shape}"
                )
        object.__setattr__(self, "steps", s)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "lrs", lr)


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


def reference_shape(ref: Reference, mapping: MetricMap, max_bins: int) -> ReferenceShape | None:
    """The reference's smoothed shape in the run's falling space, or None where it leaves that space (y <= 0)."""
    ok = np.isfinite(ref.values)
    y = mapping.to_y(ref.values[ok])
    if np.any(y <= 0) or not np.all(np.isfinite(y)):  # past this run's floor: its ratios would mean nothing here
        return None
    binned = bin_curve(ref.steps[ok], y, np.ones_like(y), max_bins)
    frac = binned.steps / max(float(ref.steps[-1]), 1.0)
    area = None
    if ref.lrs is not None and ref.lrs.max() > 0:
        cum = np.cumsum(ref.lrs)
        area = np.interp(binned.steps, np.arange(len(cum)), cum) / cum[-1]
    y_smooth = np.maximum(_local_lines(frac, binned.values, binned.counts, SMOOTH_WIDTH), 1e-3 * binned.values)
    if not np.all(np.isfinite(y_smooth)):
        return None
    return ReferenceShape(frac, y_smooth, binned.counts, area)


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
        if not ratios:
            return np.full(t.shape, math.nan)
        return np.median(np.stack(ratios), axis=0)

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
