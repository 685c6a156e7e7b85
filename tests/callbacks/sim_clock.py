"""A simulated clock for timing tests: time passes only when the test says so, plus a tiny tick per reading."""

from __future__ import annotations


class SimClock:
    """Callable like ``time.perf_counter``; ``advance(seconds)`` stands for work that takes that long.

    Every reading also moves time on by ``tick`` so that no interval is exactly zero. Module-level and picklable,
    so ``ddp_spawn`` workers get their own copy.
    """

    def __init__(self, tick: float = 1e-4) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
