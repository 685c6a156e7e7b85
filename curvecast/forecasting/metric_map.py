"""MetricMap: turn any metric into a positive, falling quantity that the curve laws fit, and back.

The laws (``curves.py``) describe a positive loss falling to a floor ``>= 0``, fitted in log space. A metric of
another kind is mapped to such a quantity ``y = sign * value - base`` (``sign`` is -1 when higher is better):

- a positive loss (``mode="min"``, every value > 0, no bounds given): ``y = value``, the laws' own floor at 0;
- a metric with a bound on its good side (accuracy in [0, 1] with ``mode="max"``: ``y = 1 - value``, the error rate):
  the bound is the floor, so forecasts never cross it;
- anything else (a loss that goes negative or reaches 0, a reward): the floor is the best value seen, improved by as
  much as the series improved from the first half of its points to the second (at least ``BOUND_NUDGE`` and at most
  ``FLOOR_MARGIN`` times the observed range), so the forecast may improve on the best value by what the data
  supports and no more. Given the ``reach`` to the horizon (steps to go over steps logged), the floor sits where that
  improvement, continued in a straight line, would take the metric by the horizon instead: the far end of where a
  curve that slows down can go, which the interval's better side reads (``open_ceiling.py``).

Bounds the caller gives also clip intervals and point forecasts; nothing is inferred from the values but the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curvecast.forecasting.calibration import FLOOR_MARGIN
from curvecast.forecasting.real_values import check_value

__all__ = ["MODES", "MetricMap", "metric_map"]

MODES = ("min", "max")
# A value on the bound itself (a training accuracy of exactly 1.0) has y = 0, which log space cannot hold: the floor
# moves past the bound by this fraction of the observed range (intervals are clipped back to the bound).
BOUND_NUDGE = 0.01


@dataclass(frozen=True)
class MetricMap:
    """``y = sign * value - base``, positive and falling as the metric improves; ``lo``/``hi`` clip the metric."""

    mode: str = "min"
    base: float = 0.0
    lo: float = -math.inf
    hi: float = math.inf

    @property
    def sign(self) -> float:
        return 1.0 if self.mode == "min" else -1.0

    def to_y(self, values: np.ndarray | float) -> np.ndarray:
        return self.sign * np.asarray(values, dtype=np.float64) - self.base

    def to_metric(self, y: np.ndarray | float) -> np.ndarray:
        return np.clip(self.sign * (np.asarray(y, dtype=np.float64) + self.base), self.lo, self.hi)


def check_mode_bounds(mode: str, bounds: tuple[float | None, float | None] | None) -> tuple[float, float]:
    """Validate ``mode`` and ``bounds``; return the bounds as floats (``-inf``/``inf`` where open)."""
    if mode not in MODES:
        raise ValueError(f"Expected `mode` to be one of {MODES}, but got {mode!r}")
    if bounds is None:
        return (-math.inf, math.inf)
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        msg = f"Expected `bounds` to be a pair (lo, hi), None for an open side, but got {bounds!r}"
        raise ValueError(msg) from None
    lo = -math.inf if lo is None else check_value(lo, "bounds")
    hi = math.inf if hi is None else check_value(hi, "bounds")
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ValueError(f"`bounds` must satisfy lo < hi, but got ({lo}, {hi})")
    return lo, hi


def metric_map(values: np.ndarray, mode: str, lo: float, hi: float, reach: float = 0.0) -> MetricMap:
    """The map for finite ``values`` of a metric with direction ``mode`` and bounds ``lo``, ``hi``; ``reach`` > 0
    moves an estimated floor out to the straight line's end at the horizon (module docstring)."""
    outside = values[(values < lo) | (values > hi)]
    if outside.size:
        raise ValueError(f"`values` must lie within `bounds` ({lo:g}, {hi:g}), but got {outside[0]:g}")
    sign = 1.0 if mode == "min" else -1.0
    z = sign * values
    best = float(z.min())
    span = float(z.max()) - best
    bound = lo if mode == "min" else -hi
    if math.isfinite(bound):
        nudge = BOUND_NUDGE * (span if span > 0 else max(abs(bound), 1.0))
        base = bound if best - bound > nudge else bound - nudge
        return MetricMap(mode, base, lo, hi)
    if mode == "min" and best > 0:
        return MetricMap(mode, 0.0, lo, hi)
    return MetricMap(mode, best - _floor_margin(z, span, best, reach), lo, hi)


def _floor_margin(z: np.ndarray, span: float, best: float, reach: float = 0.0) -> float:
    """How far past the best value ``best`` of ``z`` (the metric signed to fall) the floor sits when nothing bounds
    it: as far as the series improved from the first half of its points to the second (medians: one lucky point
    moves neither), at least ``BOUND_NUDGE`` of the range and at most ``FLOOR_MARGIN`` times it. A loss falling
    through zero keeps falling about as fast as it did; one that stopped improving stays near its best.

    With a ``reach`` that improvement is continued in a straight line to the horizon: the two halves' medians stand
    about half the logged span apart, so the horizon, ``reach`` spans on, is ``2 * reach`` such improvements away.
    (Continuing the last two quarters' improvement instead, the pace a curve that slowed down goes at now, covered 5
    of the 8 live RL returns from 10 % of their runs, not 7.)"""
    if not span > 0:
        return max(abs(best), 1.0)
    half = len(z) // 2
    progress = float(np.median(z[:half]) - np.median(z[half:])) if half >= 2 else span
    line = max(1.0, 2.0 * reach)
    return float(np.clip(progress * line, BOUND_NUDGE * span, FLOOR_MARGIN * span * line))
