"""Input checks and binning: turn raw (steps, values, counts) into a short, weighted curve that is cheap to fit.

Per-step losses are noisy and a long run has millions of them; the fit only needs their local means. Points are
averaged into at most ``max_bins`` bins of equal step width (count-weighted), so a refit costs the same for 10 thousand
or 10 million points; the O(n) binning pass itself is a few vectorised numpy reductions.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from curvecast.forecasting.real_values import real_array
from curvecast.forecasting.schedule import LRSchedule

__all__ = ["Binned", "bin_curve", "check_horizon", "check_inputs", "fittable", "point_scatter"]

# The fit squares the values, which overflows float64 past about 1.3e154: beyond this (a margin for the shift to the
# metric's floor) a value is out of floating-point reach.
_MAX_FITTED = 1e150


@dataclass(frozen=True)
class Binned:
    """A binned curve: mean ``steps`` and ``values`` with the number of raw points behind each, and the noise level.

    ``noise`` is the relative standard deviation of one raw point around the smooth curve (robust, from local
    differences of log values): losses are noisier in absolute terms where they are larger.
    """

    steps: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    noise: float


def check_horizon(horizon: object) -> int:
    """``horizon`` as an int, after checking it is a non-negative integer (a float only when integral, as ``1e4``)."""
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Real):
        raise TypeError(f"Expected `horizon` to be an integer, but got {horizon!r} ({type(horizon).__name__})")
    integral = isinstance(horizon, numbers.Integral) or (math.isfinite(horizon) and float(horizon).is_integer())
    if not integral or horizon < 0:
        raise ValueError(f"Expected `horizon` to be a non-negative integer (the step to forecast), but got {horizon}")
    return int(horizon)


def check_inputs(
    steps: np.ndarray,
    values: np.ndarray,
    horizon: int,
    lrs: np.ndarray | LRSchedule | None,
    counts: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | LRSchedule | None]:
    """Validate the arguments of ``Forecaster.fit``; return float64 arrays (an ``LRSchedule`` as it is) or raise
    ValueError naming the problem."""
    s, v = real_array(steps, "steps"), real_array(values, "values")
    if s.ndim != 1 or v.ndim != 1:
        raise ValueError(f"`steps` and `values` must be 1-D, but got shapes {s.shape} and {v.shape}")
    if len(s) != len(v):
        raise ValueError(f"`steps` and `values` must have the same length, but got {len(s)} and {len(v)}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"`steps` must be finite, but got {s[~np.isfinite(s)][0]}")
    bad = np.flatnonzero(np.diff(s) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"`steps` must increase, but step {s[i + 1]:g} follows {s[i]:g}")
    if len(s) and s[0] < 0:
        raise ValueError(f"`steps` must be non-negative, but got {s[0]:g}")
    if len(s) and horizon < float(s[-1]):  # a Python float: numpy would convert an int past 1e308 and overflow
        raise ValueError(f"`horizon` must be at or after the last step, but got {horizon} < {s[-1]:g}")
    if counts is None:
        c = np.ones_like(v)
    else:
        c = real_array(counts, "counts")
        if c.shape != v.shape:
            raise ValueError(f"`counts` must have the same length as `values`, but got {c.shape} and {v.shape}")
        if not np.all(np.isfinite(c) & (c > 0)):
            raise ValueError(f"`counts` must be positive and finite, but got {c[~(np.isfinite(c) & (c > 0))][0]}")
    lr = None
    if isinstance(lrs, LRSchedule):
        # Checked when it was built; only its length can disagree (and it may be too long to copy into an array).
        if len(lrs) != horizon + 1:
            raise ValueError(f"`lrs` must cover steps 0..horizon ({horizon + 1} steps), but it has {len(lrs)}")
        lr = lrs
    elif lrs is not None:
        lr = real_array(lrs, "lrs")
        if lr.ndim != 1 or len(lr) != horizon + 1:
            raise ValueError(f"`lrs` must hold one LR per step 0..horizon ({horizon + 1} values), but got {lr.shape}")
        if not np.all(np.isfinite(lr)):
            i = int(np.argmin(np.isfinite(lr)))
            raise ValueError(f"`lrs` must be finite, but got {lr[i]} at step {i}")
        if np.any(lr < 0):
            raise ValueError(f"`lrs` must be non-negative, but got {lr.min():g} at step {int(np.argmin(lr))}")
    return s, v, c, lr


def fittable(values: np.ndarray, min_points: int) -> np.ndarray:
    """Which ``values`` the fit uses: the finite ones, less those out of floating-point reach when at least
    ``min_points`` are left (a lone 1e300 among losses near 1 is dropped as an inf is, not fatal to the whole fit);
    with fewer left, all the finite ones, and the forecast says the values are too large."""
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        in_reach = finite & (np.abs(values) <= _MAX_FITTED)
    return in_reach if in_reach.sum() >= min_points else finite


# The scatter of the latest points is read from the last quarter of a curve's points, once that quarter holds this many.
RECENT_SCATTER_POINTS = 32


def point_scatter(values: np.ndarray, counts: np.ndarray) -> float:
    """The scatter of one logged point of ``values`` (positive, relative): the larger of the noise estimate the fit
    weighs by and the same taken about the median second difference (a curve bending steadily moves the first), over
    the whole curve and over its latest quarter. The least an interval for the value logged at some later step may be.

    A classifier's per-batch loss scatters more as it falls (fewer examples left wrong in each batch): a fine-tuned
    MLP's scattered 0.17 over its last 200 steps and 0.04 over the whole run, and its forecast of the next step, 0.62
    .. 0.68, lay below each of its last five batches (0.68-0.98)."""
    recent = len(values) // 4
    tails = [slice(None), slice(-recent, None)] if recent >= RECENT_SCATTER_POINTS else [slice(None)]
    return max(_noise(values[t], counts[t], centered) for t in tails for centered in (False, True))


def _noise(values: np.ndarray, counts: np.ndarray, centered: bool = False) -> float:
    """Robust relative std of one raw point: MAD of second differences of logs, scaled for the counts per mean
    (``centered``: about their median rather than zero)."""
    tail = slice(-20_000, None)  # the recent part is enough and bounds the median's cost
    v, c = values[tail], counts[tail]
    v = np.log(v) if np.all(v > 0) else v / max(float(np.median(np.abs(v))), 1e-12)
    if len(v) < 4:
        return 0.0
    # Second differences cancel a locally linear trend; var(v0 - 2 v1 + v2) = sigma^2 (1/c0 + 4/c1 + 1/c2).
    d2 = v[:-2] - 2.0 * v[1:-1] + v[2:]
    d2 = d2 / np.sqrt(1.0 / c[:-2] + 4.0 / c[1:-1] + 1.0 / c[2:])
    if centered:
        d2 = d2 - np.median(d2)
    return float(1.4826 * np.median(np.abs(d2)))


def bin_curve(steps: np.ndarray, values: np.ndarray, counts: np.ndarray, max_bins: int) -> Binned:
    """Average finite points into at most ``max_bins`` bins of equal step width (empty bins vanish)."""
    noise = _noise(values, counts)
    if len(steps) <= max_bins:
        return Binned(steps, values, counts, noise)
    edges = np.linspace(steps[0], steps[-1], max_bins + 1)
    # Steps are sorted: locating the bin edges among the steps costs O(bins log n), not O(n log bins).
    starts = np.unique(np.searchsorted(steps, edges[:-1], side="left"))
    starts = starts[starts < len(steps)]
    n = np.add.reduceat(counts, starts)
    s = np.add.reduceat(steps * counts, starts) / n
    v = np.add.reduceat(values * counts, starts) / n
    return Binned(s, v, n, noise)
