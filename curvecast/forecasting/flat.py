"""The flat hypothesis: a curve that is not learning any more stays at its recent level.

Most short Lightning logs (a validation loss once per epoch, a per-batch loss every 50 steps) end where they stopped
learning, or rise as the model overfits: a law that must fall forecasts them too low. ``FlatMember`` joins the
ensemble of a run without a planned schedule and competes on the held-back tail like every law: it wins the curves
that do not fall, and shares the weight of a short or noisy history whose tail no law forecasts better than its
level (the shrinkage toward the recent level such a history needs). The level is the median of the latest points,
not the last one: a per-batch loss jumps by its noise from one logged point to the next. A curve whose later half
shows no fall clear of its scatter has stalled (``stall_window``): the forecaster then gives the flat member the
prior weight of a curve that is not learning.
"""

from __future__ import annotations

import math

import numpy as np

from curvecast.forecasting.calibration import FLAT_CLEAN_RATIO, FLAT_LEVEL_POINTS, FLAT_STALL_Z
from curvecast.forecasting.preprocess import Binned

__all__ = ["FlatMember", "flat_candidate", "recent_level", "stall_window"]


def recent_level(values: np.ndarray, noise: float) -> float:
    """The robust recent level of ``values`` (positive) whose points scatter by ``noise`` (relative): the last value
    when the curve's recent moves stand clear of that scatter (a clean curve: the median would lag its trend), else
    the median of the last ``FLAT_LEVEL_POINTS`` (a noisy one: one point is one draw of its noise).

    Example:
        >>> recent_level(np.array([5.0, 4.0, 3.1, 9.0, 2.9]), noise=1.0)
        3.1
        >>> recent_level(np.array([0.5, 0.4, 0.3, 0.25, 0.2]), noise=0.01)
        0.2
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan
    tail = v[-FLAT_LEVEL_POINTS:]
    moves = np.abs(np.diff(np.log(tail))) if np.all(tail > 0) else np.array([])
    if moves.size and float(np.median(moves)) > FLAT_CLEAN_RATIO * noise:
        return float(v[-1])
    return float(np.median(tail))


def stall_window(data: Binned) -> np.ndarray | None:
    """The later half of ``data`` (in log steps, at least its last 4 bins) when it shows no fall clear of its scatter,
    as a mask of the bins; None when it does fall (or fewer than 4 bins tell nothing).

    Stalled means the least-squares slope of log y on log step there is less than ``FLAT_STALL_Z`` standard errors
    below zero: a curve still learning falls by more than its noise over half its log-steps.
    """
    t, y, c = data.steps, data.values, data.counts
    if len(t) < 4 or not (np.all(t > 0) and np.all(y > 0)):
        return None
    lt, ly = np.log(t), np.log(y)
    late = lt >= 0.5 * (lt[0] + lt[-1])
    if late.sum() < 4:
        late = np.zeros_like(late)
        late[-4:] = True
    x, v, w = lt[late], ly[late], c[late]
    x = x - np.average(x, weights=w)
    den = float(np.sum(w * x * x))
    if not den > 0:
        return None
    slope = float(np.sum(w * x * v)) / den
    res = v - np.average(v, weights=w) - slope * x
    se = math.sqrt(max(float(np.sum(w * res * res)) / max(float(w.sum()) - 2.0, 1.0), 0.0) / den)
    return late if -slope < FLAT_STALL_Z * se else None


class FlatMember:
    """The member that forecasts the recent level of ``data`` (the falling quantity) at every later step."""

    name = "flat"
    anneal_sd = 0.0

    def __init__(self, data: Binned) -> None:
        # The recent level even when the curve has stalled: the median of the whole stalled stretch is steadier on a
        # flat synthetic curve (1.1 % against 2.4 % median error), but on the wild logs it lagged the curves that
        # stall while still drifting (training losses from 25 %: 17.3 % against 15.0 %).
        self.level = recent_level(data.values, data.noise)
        self.since = float(data.steps[max(len(data.steps) - FLAT_LEVEL_POINTS, 0)])

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(np.asarray(t, dtype=np.float64)), self.level)

    def describe(self) -> str:
        return f"flat(level={self.level:.4g} from step {self.since:g})"


def flat_candidate(data: Binned, head: np.ndarray | None) -> tuple[FlatMember, float, float]:
    """The flat member on all of ``data``, the error of the one on its ``head`` bins on the held-back tail (relative,
    root mean square, count-weighted) and its backtest (the head's level against the whole one's), as the forecaster
    measures every candidate; without a ``head``: error 1, no backtest."""
    full = FlatMember(data)
    if head is None:
        return full, 1.0, math.nan
    part = FlatMember(Binned(data.steps[head], data.values[head], data.counts[head], data.noise))
    rel = part.level / data.values[~head] - 1.0
    err = float(np.sqrt(np.average(rel**2, weights=data.counts[~head])))
    return full, err, part.level / full.level - 1.0
