"""TimeLimit: the step a run with a time limit (``Trainer(max_time=...)``) will have reached when its time runs out.

Lightning stops such a run at the first step past its ``Timer``'s duration, so its last step is the steps taken so far
plus the pace times the time left. The pace is the faster of the later half and the latest quarter of this fit's time
so far: the first steps (warm caches, compilation) run slower than the rest, and a pace from the start places the end
too early, where a forecast to it is too pessimistic and a stop rule may give up on a run that would have made it.
The half holds the validations' share of the time; the quarter follows a pace that is still rising out of the start.
Where the two differ, the end read is the later one: a wrong stop costs more than a forecast a little optimistic.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from curvecast._lightning import timer_of

__all__ = ["TimeLimit"]

# No estimate before this share of the time limit has passed, nor from fewer steps: a pace read over a handful of
# steps is mostly the start's.
MIN_ELAPSED_SHARE = 0.05
MIN_STEPS = 10


class TimeLimit:
    """The Trainer's time limit and the pace of the steps under it.

    Args:
        timer: Lightning's ``Timer`` callback with a duration (see :meth:`of`).
    """

    def __init__(self, timer: Any) -> None:
        self.timer = timer
        self._seconds: list[float] = []  # seconds elapsed at each look of this fit, from `_first` on
        self._steps: list[int] = []  # the step at each look
        self._first = 0  # the looks before it lie before the later half of the time: never read again

    @classmethod
    def of(cls, trainer: Any) -> TimeLimit | None:
        """The run's time limit, or None where it has none (no ``max_time``, nor a ``Timer`` with a duration)."""
        timer = timer_of(trainer)
        return None if timer is None else cls(timer)

    def last_step(self, step: int) -> int | None:
        """The step the run will have reached when its time runs out, as seen at ``step`` (the next step's index);
        None while too little time or too few steps have passed to tell the pace. O(log looks) a look."""
        elapsed, left = float(self.timer.time_elapsed()), self.timer.time_remaining()
        if left is None or not (math.isfinite(elapsed) and math.isfinite(left)):
            return None
        self._seconds.append(elapsed)
        self._steps.append(step)
        span = elapsed - self._seconds[0]
        looks = (self._at_or_before(elapsed - span / 2), self._at_or_before(elapsed - span / 4))
        paces = [p for p in (self._pace_from(i, elapsed, step) for i in looks) if p is not None]
        if not paces:  # too few steps in the later half: the pace of the whole fit
            paces = [p for p in (self._pace_from(0, elapsed, step),) if p is not None]
        self._forget_before(looks[0])
        if not paces or elapsed < MIN_ELAPSED_SHARE * (elapsed + max(left, 0.0)):
            return None
        return step + max(round(max(paces) * left), 0)

    def _pace_from(self, i: int, elapsed: float, step: int) -> float | None:
        seconds, steps = elapsed - self._seconds[i], step - self._steps[i]
        return steps / seconds if steps >= MIN_STEPS and seconds > 0 else None

    def _at_or_before(self, seconds: float) -> int:
        return max(bisect.bisect_right(self._seconds, seconds, lo=self._first) - 1, self._first)

    def _forget_before(self, i: int) -> None:
        """Drop the looks before ``i`` (but the first: the fallback pace of the whole fit), compacting the lists once
        the dropped part is a quarter of them (the later half of the time holds about half the looks)."""
        self._first = max(self._first, i)
        if 4 * self._first > len(self._seconds) and self._first > 1:
            del self._seconds[1 : self._first], self._steps[1 : self._first]
            self._first = 1

    def ran_out(self) -> bool:
        """Whether the time limit has been reached."""
        left = self.timer.time_remaining()
        return left is not None and left <= 0
