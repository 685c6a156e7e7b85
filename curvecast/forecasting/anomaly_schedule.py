"""LrSchedule: O(1) questions about a known learning-rate schedule (restarts, drops ahead, annealing)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["LrSchedule"]


class LrSchedule:
    """Answers, in O(1) per question, what the planned LR does around a step.

    Args:
        lrs: the planned learning rate at every step ``0..N`` (index = optimizer step).
        rise_rtol: an LR increase by more than this fraction between two steps counts as a rise
            (warmup or a warm restart).

    Example:
        >>> s = LrSchedule([0.1, 0.1, 0.01, 0.01, 0.1, 0.1])
        >>> s.rose_between(3, 4), s.rose_between(0, 3), s.drop_ahead(0), s.drop_ahead(4)
        (True, False, True, False)
    """

    def __init__(self, lrs: Sequence[float], rise_rtol: float = 1e-3) -> None:
        if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) and not hasattr(lrs, "__len__"):
            raise TypeError(
                f"Expected `lrs` to be a sequence of floats (LR at steps 0..N), but got {type(lrs).__name__}"
            )
        try:
            values = [float(v) for v in lrs]
        except (TypeError, ValueError) as err:
            raise TypeError(f"Expected `lrs` to hold numbers, but got {err}") from None
        if not values:
            raise ValueError("`lrs` must hold the LR of at least one step, but it is empty")
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v) or v < 0), None)
        if bad is not None:
            raise ValueError(f"`lrs` must be finite and non-negative, but lrs[{bad}] = {values[bad]}")
        self.lrs = values
        # Precomputed once, O(N): the last step <= i where the LR rose, the max so far, the min ahead.
        n = len(values)
        self._last_rise = [-1] * n
        self._peak = [0.0] * n
        self._min_ahead = [0.0] * n
        last, peak = -1, 0.0
        for i, v in enumerate(values):
            if i > 0 and v > values[i - 1] * (1.0 + rise_rtol):
                last = i
            peak = max(peak, v)
            self._last_rise[i], self._peak[i] = last, peak
        low = math.inf
        for i in range(n - 1, -1, -1):
            low = min(low, values[i])
            self._min_ahead[i] = low

    def __len__(self) -> int:
        return len(self.lrs)

    def _clip(self, step: int) -> int:
        return min(max(step, 0), len(self.lrs) - 1)

    def lr(self, step: int) -> float:
        """The planned LR at ``step`` (the last planned LR past the end of the schedule)."""
        return self.lrs[self._clip(step)]

    def rose_between(self, after: int, upto: int) -> bool:
        """Whether the LR rose at some step in ``(after, upto]``."""
        if upto >= len(self.lrs) and after >= len(self.lrs) - 1:
            return False
        return self._last_rise[self._clip(upto)] > after

    def drop_ahead(self, step: int, factor: float = 0.5) -> bool:
        """Whether the LR later falls to at most ``factor`` times its value at ``step``."""
        i = self._clip(step)
        return self._min_ahead[i] <= factor * self.lrs[i]

    def fraction_of_peak(self, step: int) -> float:
        """The LR at ``step`` as a fraction of the highest LR up to ``step`` (1.0 before any LR is set)."""
        i = self._clip(step)
        return self.lrs[i] / self._peak[i] if self._peak[i] > 0 else 1.0
