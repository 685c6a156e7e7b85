"""SeriesStore: one series of a RunHistory, compressed bins of old points followed by the exact recent window.

The storage both :mod:`curvecast.history` (recording) and :mod:`curvecast.history_state` (reading a saved state back)
build on, with the limits and checks they share; the module docstring of :mod:`curvecast.history` tells how the bins
work and what a rewind drops.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "INITIAL_WIDTH",
    "MAX_DOUBLINGS",
    "MAX_STEP",
    "MIN_BINS",
    "Rows",
    "Series",
    "SeriesStore",
    "bin_means",
    "checked_size",
    "step_problem",
]

INITIAL_WIDTH = 1e-4  # in log1p(step): below one step per bin until step 10,000
# Bins only ever double in width, and at INITIAL_WIDTH * 2**19 (about 52) every step up to 2**53 (log1p about 36.7)
# falls in one bin, so no compression widens them further: a width outside this range is a damaged state.
MAX_DOUBLINGS = 19
MAX_STEP = 2**53  # every integer up to here is exact in float64, so distinct steps stay distinct in the views
# Two bins at least: one bin would flatten the whole compressed part into a single mean, leaving no curve to fit; and
# fewer than one never ends the loop that widens the bins until they fit the budget.
MIN_BINS = 2


@dataclass(frozen=True)
class Series:
    """A read-only view of one series: ``steps`` and ``values`` (float64), ``counts`` = raw points behind each row.

    Rows from the exact window have a count of 1; rows from the compressed part hold the mean of ``counts`` points.
    """

    steps: np.ndarray
    values: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


class SeriesStore:
    """One series: compressed bins of old points followed by the exact recent window.

    Invariants (checked on load): ``bin_last`` and ``steps`` strictly increase and the window starts after the last
    bin; bin ``i`` holds ``bin_counts[i]`` distinct integer steps in ``(bin_last[i - 1], bin_last[i]]``, so its mean
    step lies in that range too.
    """

    __slots__ = ("bin_steps", "bin_values", "bin_counts", "bin_last", "steps", "values", "width", "_cache")

    def __init__(self) -> None:
        self.bin_steps: list[float] = []
        self.bin_values: list[float] = []
        self.bin_counts: list[int] = []
        self.bin_last: list[int] = []  # the last raw step in each bin: what a rewind compares with
        self.steps: list[int] = []
        self.values: list[float] = []
        self.width = INITIAL_WIDTH  # bin width in log1p(step)
        self._cache: Series | None = None

    def rewind(self, step: int) -> None:
        """Drop every point at or after ``step``; bins holding such a point go whole (see :mod:`curvecast.history`)."""
        cut = bisect_left(self.steps, step)  # O(log n): no copy of the window
        del self.steps[cut:], self.values[cut:]
        if cut == 0 and self.bin_last:
            keep = bisect_left(self.bin_last, step)  # the bins whose every point is before `step`
            del self.bin_steps[keep:], self.bin_values[keep:], self.bin_counts[keep:], self.bin_last[keep:]
        self._cache = None

    def append(self, step: int, value: float) -> None:
        """Record one checked point; a step at or before the last one rewinds the series to it first."""
        steps = self.steps
        if not steps or step <= steps[-1]:
            self.rewind(step)  # a no-op for a new series; otherwise replaces the replayed part
        steps.append(step)
        self.values.append(value)
        self._cache = None

    def compress(self, n_points: int, max_bins: int) -> None:
        """Move the oldest ``n_points`` of the window into the log-spaced bins, widening them to stay bounded."""
        rows = Rows(
            steps=np.asarray(self.bin_steps + self.steps[:n_points], dtype=np.float64),
            values=np.asarray(self.bin_values + self.values[:n_points], dtype=np.float64),
            counts=np.asarray(self.bin_counts + [1] * n_points, dtype=np.int64),
            last=np.asarray(self.bin_last + self.steps[:n_points], dtype=np.int64),
        )
        del self.steps[:n_points], self.values[:n_points]
        rows = bin_means(rows, self.width)
        while len(rows.steps) > max_bins:  # ends: at most MAX_DOUBLINGS doublings put every step in one bin
            self.width *= 2
            rows = bin_means(rows, self.width)
        self.bin_steps, self.bin_values = rows.steps.tolist(), rows.values.tolist()
        self.bin_counts, self.bin_last = rows.counts.tolist(), rows.last.tolist()
        self._cache = None

    def view(self) -> Series:
        if self._cache is None:
            n_bins = len(self.bin_steps)
            steps = np.empty(n_bins + len(self.steps), dtype=np.float64)
            values = np.empty_like(steps)
            counts = np.ones(len(steps), dtype=np.int64)
            steps[:n_bins], steps[n_bins:] = self.bin_steps, self.steps
            values[:n_bins], values[n_bins:] = self.bin_values, self.values
            counts[:n_bins] = self.bin_counts
            for array in (steps, values, counts):
                array.flags.writeable = False
            self._cache = Series(steps, values, counts)
        return self._cache


@dataclass(frozen=True)
class Rows:
    """Rows about to be binned: mean step, mean value, raw count and last raw step of each."""

    steps: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    last: np.ndarray


def bin_means(rows: Rows, width: float) -> Rows:
    """Weighted means of the rows falling in each bin of ``width`` in log1p(step); non-finite values are left out."""
    keys = np.floor(np.log1p(rows.steps) / width)
    edges = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[edges[1:], len(keys)]
    counts = np.add.reduceat(rows.counts, edges)
    last = rows.last[ends - 1]
    # The mean lies in (previous bin's last step, this bin's last step]; clipping removes the rounding that could
    # otherwise push it a hair outside, so the invariants the loader checks hold exactly.
    lowest = np.r_[0, last[:-1] + 1]
    steps = np.add.reduceat(rows.steps * rows.counts, edges) / counts
    steps = np.clip(steps, lowest, last)
    return Rows(steps, _value_means(rows, edges, ends), counts, last)


def _value_means(rows: Rows, edges: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Count-weighted mean of the finite values of each bin; NaN for a bin with none.

    Each row is weighted by its share of its bin's finite weight before summing, so values near the float64 limit
    average to a finite mean instead of overflowing to inf.
    """
    finite = np.isfinite(rows.values)
    finite_counts = np.where(finite, rows.counts, 0)
    finite_weight = np.add.reduceat(finite_counts, edges)
    share = finite_counts / np.repeat(np.maximum(finite_weight, 1), ends - edges)
    means = np.add.reduceat(np.where(finite, rows.values, 0.0) * share, edges)
    # A bin whose raw points were all non-finite reads NaN, so the gap stays visible to the forecaster.
    return np.where(finite_weight > 0, means, np.nan)


def checked_size(field: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, else a ValueError/TypeError naming ``field``."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"Expected `{field}` to be an int, but got {type(value).__name__} {value!r}") from None
    if value < minimum:
        raise ValueError(f"Expected `{field}` to be at least {minimum}, but got {value}")
    return value


def step_problem(step: Any) -> tuple[type[Exception], str] | tuple[None, int]:
    """(None, the step as an int) for a valid step, else (the exception type, what is wrong with it)."""
    if isinstance(step, (bool, np.bool_)):
        return TypeError, "is a bool, not an integer"
    if isinstance(step, (float, np.floating)):
        if not math.isfinite(step):
            return ValueError, "is not finite"
        if not float(step).is_integer():
            return ValueError, "is not an integer"
        step = int(step)
    else:
        try:
            step = operator.index(step)  # ints, numpy and torch integer scalars
        except TypeError:
            return TypeError, f"is a {type(step).__name__}, not an integer"
    if step < 0:
        return ValueError, "is negative"
    if step > MAX_STEP:
        return ValueError, "is above 2**53"
    return None, step
