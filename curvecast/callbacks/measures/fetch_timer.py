"""FetchTimer: the time the training loop really waits for its next batch, read from Lightning's own profiler calls.

The gap between one batch's end and the next batch's start holds more than the data loader: the other callbacks'
hooks (a progress bar, checkpointing), logging, the loop's bookkeeping. Counting all of it as data wait called an
in-memory ``TensorDataset`` data-bound. Lightning's training loop brackets every fetch of a batch with
``trainer.profiler.start/stop("[_TrainingEpochLoop].train_dataloader_next")``, whatever profiler is set (the default
``PassThroughProfiler`` included): the timer wraps those two methods of the Trainer's profiler instance and times
only that action. Cost: a string test per profiled action (a fraction of a microsecond each).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["FetchTimer"]

FETCH_ACTION = "train_dataloader_next"  # the suffix of the action name Lightning profiles each training fetch under


class FetchTimer:
    """Seconds spent fetching training batches, taken since the last :meth:`take`.

    Attributes:
        measured: a fetch was timed since :meth:`attach` (False when the loop fetches in another way, e.g. a
            ``training_step`` that takes the ``dataloader_iter``, or a Trainer without a profiler).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.measured = False
        self._seconds = 0.0
        self._started: float | None = None
        self._profiler: Any = None

    def attach(self, trainer: Any) -> None:
        """Wrap the ``start``/``stop`` methods of ``trainer.profiler`` (undone by :meth:`detach`)."""
        self.detach()
        self.measured, self._seconds, self._started = False, 0.0, None
        profiler = getattr(trainer, "profiler", None)
        start, stop = getattr(profiler, "start", None), getattr(profiler, "stop", None)
        if not callable(start) or not callable(stop):
            return

        def timed_start(action_name: str) -> None:
            if action_name.endswith(FETCH_ACTION):
                self._started = self.clock()
            start(action_name)

        def timed_stop(action_name: str) -> None:
            stop(action_name)
            if self._started is not None and action_name.endswith(FETCH_ACTION):
                self._seconds += self.clock() - self._started
                self._started = None
                self.measured = True

        profiler.start, profiler.stop = timed_start, timed_stop
        self._profiler = profiler

    def take(self) -> float:
        """The fetch seconds since the last call."""
        seconds, self._seconds = self._seconds, 0.0
        return seconds

    def detach(self) -> None:
        """Give the profiler its own methods back."""
        profiler, self._profiler = self._profiler, None
        if profiler is not None:
            for name in ("start", "stop"):
                vars(profiler).pop(name, None)  # the instance attributes set by attach; the class's methods remain
