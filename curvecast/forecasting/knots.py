"""Knots: a function of the step summarised by a bounded number of (step, LR) points, linear in between.

:func:`sample_knots` follows any function of the step (a scheduler jumped ahead, a closed form) by adaptive bisection
on a grid; :func:`interpolate_knots` reads the knots back at one step. A long planned schedule is kept this way
(:meth:`~curvecast.forecasting.schedule.LRSchedule.from_knots`) instead of one LR per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_SAMPLES", "SAMPLE_GRID", "SAMPLE_RTOL", "SampledKnots", "interpolate_knots", "sample_knots"]

# sample_knots: the first grid (a cosine over any length, linear between 4097 points, is off by at most
# (pi / 4096)^2 / 8 ~ 7e-8 of its peak), the bisection's tolerance (a fraction of the peak LR: an LR area off by 1e-4
# moves S1 by as little, far below what a forecast resolves), and the most evaluations (about 5-10 us each for a torch
# scheduler's closed form, so under 0.7 s; a schedule that needs more changes too often to summarise and is refused).
SAMPLE_GRID = 4096
SAMPLE_RTOL = 1e-4
MAX_SAMPLES = 65_536


@dataclass(frozen=True)
class SampledKnots:
    """Knots of a sampled LR function: increasing integer ``steps``, their ``lrs`` (linear in between), about the
    largest error between knots (``tolerance``, in LR units) and the number of ``evaluations`` of the function."""

    steps: np.ndarray
    lrs: np.ndarray
    tolerance: float
    evaluations: int


def interpolate_knots(steps: np.ndarray, lrs: np.ndarray, step: int) -> float:
    """The LR at integer ``step`` of knots ``(steps, lrs)``, linear between knots and flat outside them: O(log knots).

    Example:
        >>> interpolate_knots(np.array([0, 10]), np.array([1.0, 0.0]), 4)
        0.6
    """
    j = int(np.searchsorted(steps, step, side="right")) - 1
    if j < 0:
        return float(lrs[0])
    if j >= len(steps) - 1 or steps[j] == step:
        return float(lrs[j])
    a, b = int(steps[j]), int(steps[j + 1])
    return float(lrs[j] + (lrs[j + 1] - lrs[j]) * ((step - a) / (b - a)))


def _evaluate(lr_of_steps: Callable[[np.ndarray], np.ndarray], steps: np.ndarray) -> np.ndarray:
    values = np.asarray(lr_of_steps(steps), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise ValueError(f"the LR at step {int(steps[bad[0]])} is {values[bad[0]]}: not finite and non-negative")
    return values


def sample_knots(
    lr_of_steps: Callable[[np.ndarray], np.ndarray],
    first: int,
    last: int,
    scale: float = 0.0,
    max_evaluations: int = MAX_SAMPLES,
) -> SampledKnots | None:
    """Knots of ``lr_of_steps`` on the integer steps ``first..last``, linear between knots, by adaptive bisection.

    A grid of ``SAMPLE_GRID`` intervals first; then each interval whose midpoint lies off the line between its ends by
    more than ``SAMPLE_RTOL`` of the peak (the largest LR seen, or ``scale`` if larger) is split, round after round,
    down to one step: a jump ends up between two knots one step apart, a smooth stretch at the spacing its curvature
    needs. A feature narrower than the first grid that no midpoint touches (a spike between two grid points) is
    missed, as in any sampling. Raises ValueError on a non-finite or negative LR.

    Args:
        lr_of_steps: maps an int64 array of steps to their LRs.
        scale: the LR the tolerance is relative to, when larger than every sampled LR (e.g. the peak of a prefix).
        max_evaluations: give up past this many evaluations.

    Returns:
        the knots, or None when the schedule needs more than ``max_evaluations`` evaluations to follow.

    Example:
        >>> knots = sample_knots(lambda t: np.where(t < 700, 1.0, 0.1), 0, 100_000)
        >>> int(knots.steps[np.argmax(knots.lrs < 1.0) - 1]), int(knots.steps[np.argmax(knots.lrs < 1.0)])
        (699, 700)
    """
    steps = np.unique(np.linspace(first, last, min(SAMPLE_GRID, last - first) + 1).round().astype(np.int64))
    lrs = _evaluate(lr_of_steps, steps)
    evaluations = len(steps)
    pending = np.ones(len(steps), dtype=bool)  # pending[i]: the interval steps[i]..steps[i + 1] is still to check
    while True:
        a, b = steps[:-1], steps[1:]
        check = pending[:-1] & (b - a >= 2)
        if not check.any():
            # Twice the bisection's tolerance: a jump just under it at an interval's midpoint is a jump under twice
            # it between the knots, which the line misses by up to the jump.
            return SampledKnots(steps, lrs, 2.0 * SAMPLE_RTOL * max(scale, float(lrs.max())), evaluations)
        mid = (a[check] + b[check]) // 2
        evaluations += len(mid)
        if evaluations > max_evaluations:
            return None
        at_mid = _evaluate(lr_of_steps, mid)
        ya, yb = lrs[:-1][check], lrs[1:][check]
        line = ya + (yb - ya) * ((mid - a[check]) / (b[check] - a[check]))
        tolerance = SAMPLE_RTOL * max(scale, float(lrs.max()), float(at_mid.max()))
        off = np.abs(at_mid - line) > tolerance
        pending[:-1][check] = off  # both halves of an interval off its line are checked again, the others are done
        order = np.argsort(np.concatenate([steps, mid]), kind="stable")
        steps = np.concatenate([steps, mid])[order]
        lrs = np.concatenate([lrs, at_mid])[order]
        pending = np.concatenate([pending, off])[order]
