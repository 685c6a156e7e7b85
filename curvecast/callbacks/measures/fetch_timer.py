"""FetchTimer: the time the training loop really waits for its next batch, read around Lightning's own fetch.

The gap between one batch's end and the next batch's start holds more than the data loader: the other callbacks'
hooks (a progress bar, checkpointing), logging, the loop's bookkeeping. Counting all of it as data wait called an
in-memory ``TensorDataset`` data-bound. Lightning's training epoch loop brackets every fetch of a batch with its
``_on_before_fetch`` / ``_on_after_fetch`` (which start and stop the profiler's
``"[_TrainingEpochLoop].train_dataloader_next"`` action, whatever profiler is set): the timer wraps those two methods of
the loop instance, two calls a step. A loop without them (another Lightning version) falls back to wrapping
``trainer.profiler.start/stop`` and timing that action alone, at the cost of a string test on each of the 60-odd
profiled actions of a step (0.3 us each).
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
            ``training_step`` that takes the ``dataloader_iter``).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.measured = False
        self._seconds = 0.0
        self._started: float | None = None
        # The object whose two methods are wrapped, and the instance attributes they replaced (None: none).
        self._wrapped: tuple[Any, dict[str, Any]] | None = None

    def attach(self, trainer: Any) -> None:
        """Wrap the training loop's fetch brackets, or else the profiler's ``start``/``stop`` (undone by
        :meth:`detach`)."""
        self.detach()
        self.measured, self._seconds, self._started = False, 0.0, None
        loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
        before, after = getattr(loop, "_on_before_fetch", None), getattr(loop, "_on_after_fetch", None)
        if callable(before) and callable(after):
            self._wrap(loop, "_on_before_fetch", "_on_after_fetch", before, after)
            return
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
                self._done()

        self._set(profiler, {"start": timed_start, "stop": timed_stop})

    def _wrap(self, owner: Any, begin: str, end: str, before: Callable[[], None], after: Callable[[], None]) -> None:
        def timed_before() -> None:
            self._started = self.clock()
            before()

        def timed_after() -> None:
            after()
            if self._started is not None:
                self._done()

        self._set(owner, {begin: timed_before, end: timed_after})

    def _set(self, owner: Any, methods: dict[str, Callable[..., None]]) -> None:
        """Put ``methods`` on ``owner`` as instance attributes, keeping any it had there to give back."""
        own = vars(owner)
        self._wrapped = (owner, {name: own.get(name) for name in methods})
        for name, method in methods.items():
            setattr(owner, name, method)

    def _done(self) -> None:
        self._seconds += self.clock() - self._started
        self._started = None
        self.measured = True

    def take(self) -> float:
        """The fetch seconds since the last call."""
        seconds, self._seconds = self._seconds, 0.0
        return seconds

    def detach(self) -> None:
        """Give the loop (or the profiler) its own methods back."""
        wrapped, self._wrapped = self._wrapped, None
        if wrapped is not None:
            owner, originals = wrapped
            for name, original in originals.items():
                if original is None:
                    vars(owner).pop(name, None)  # the class's method shows through again
                else:
                    setattr(owner, name, original)
