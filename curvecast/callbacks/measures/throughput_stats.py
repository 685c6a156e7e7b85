"""Windowed statistics of per-step timings, and the straggler test across ranks (pure Python, no Trainer)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["StepTiming", "TimingWindow", "percentile", "straggler"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated ``q``-th percentile (0..100) of ``values``, like ``numpy.percentile``; NaN when empty.

    Example::

        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.5
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class StepTiming(NamedTuple):
    """Host seconds of one optimizer step, split by phase, and what it processed (a named tuple: one is built per
    step, in a tenth of the time of a frozen dataclass)."""

    data_wait: float
    compute: float  # forward and backward of every micro-batch
    optimizer: float  # on_before_optimizer_step to the end of the batch: clipping, the step, the hooks
    samples: int
    forward: float = 0.0  # batch start to on_before_backward, summed over micro-batches (part of `compute`)
    between: float = 0.0  # the rest of the gap between batches: other callbacks' hooks, logging, the loop itself

    @property
    def total(self) -> float:
        return self.data_wait + self.between + self.compute + self.optimizer

    @property
    def busy(self) -> float:
        """Data wait plus forward: the work a rank does before its first collective (DDP's gradient all-reduce).

        Under DDP every rank waits for the slowest inside backward, so step times come out equal; the time to
        reach the backward is what tells a slow rank from the others.
        """
        return self.data_wait + self.forward


class TimingWindow:
    """The last ``size`` step timings, with medians, p90 and rates over the window."""

    def __init__(self, size: int = 100) -> None:
        if size < 1:
            raise ValueError(f"Expected `size` to be a positive int, but got {size}")
        self.steps: deque[StepTiming] = deque(maxlen=size)

    def add(self, timing: StepTiming) -> None:
        self.steps.append(timing)

    def extend(self, timings: Iterable[StepTiming]) -> None:
        """Add each of ``timings`` in turn (the steps timed since the last logging step)."""
        self.steps.extend(timings)

    def __len__(self) -> int:
        return len(self.steps)

    def median(self, field: str) -> float:
        return percentile([getattr(s, field) for s in self.steps], 50)

    def seconds(self) -> float:
        return sum(s.total for s in self.steps)

    def summary(self) -> dict[str, float]:
        """The window's logged statistics, ``seconds`` (the window's total) with them, from one transposition of the
        window into columns: a pass over the window per statistic costs 1-2 ms per logging step for a window of 100."""
        if not self.steps:
            return dict.fromkeys(("samples_per_sec", "step_time", "step_time_p90", "data_wait", "data_wait_fraction",
                                  "compute_time", "optimizer_time", "seconds"), math.nan)  # fmt: skip
        wait, compute, optimizer, samples = list(zip(*self.steps, strict=True))[:4]
        totals = [s.total for s in self.steps]
        seconds = sum(totals)
        per_second = (lambda x: x / seconds) if seconds > 0 else (lambda x: math.nan)
        return {
            "samples_per_sec": per_second(sum(samples)),
            "step_time": percentile(totals, 50),
            "step_time_p90": percentile(totals, 90),
            "data_wait": percentile(wait, 50),
            "data_wait_fraction": per_second(sum(wait)),
            "compute_time": percentile(compute, 50),
            "optimizer_time": percentile(optimizer, 50),
            "seconds": seconds,
        }


def straggler(step_times: Sequence[float], ratio: float) -> tuple[bool, int, float]:
    """``(flagged, slowest rank, slowest / median)`` for per-rank median step times.

    Example::

        >>> straggler([1.0, 1.0, 1.5], ratio=1.2)
        (True, 2, 1.5)
    """
    if not step_times:
        return False, 0, math.nan
    median = percentile(step_times, 50)
    slowest = max(range(len(step_times)), key=lambda r: step_times[r])
    spread = step_times[slowest] / median if median > 0 else math.nan
    return bool(spread > ratio), slowest, spread
