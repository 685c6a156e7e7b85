"""ForecastRunner: runs forecasting jobs off the training thread, one at a time, and hands back their results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from curvecast.worker_thread import Job, WorkerThread

__all__ = ["ForecastRunner"]

T = TypeVar("T")


class ForecastRunner(Generic[T]):
    """At most one job in flight; a job submitted while another runs is dropped, so a slow fit never queues up.

    The training thread only snapshots its arrays and calls :meth:`submit` and :meth:`poll`, which never wait; at the
    end of training :meth:`drain` waits for the job in flight, but only so long: a late job is abandoned (its result
    is dropped), never waited for without limit. numpy and scipy release the GIL in their heavy loops, so a fit costs
    the training step little.

    Args:
        background: run jobs in a worker thread; False runs them inline (deterministic, for tests and tiny runs).
    """

    # This thread's CPU time, read around each job: the fit's cost whatever else runs (replaceable in tests).
    cpu_clock: Callable[[], float] = staticmethod(time.thread_time)

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self.abandoned = 0  # jobs given up on at the end of training
        self.last_cost: float | None = None  # CPU seconds the last finished job took
        self._job: Job[T] | None = None
        self._worker: WorkerThread | None = None  # started with the first job in the background
        self._inline_result: T | None = None

    @property
    def busy(self) -> bool:
        return self._job is not None and not self._job.done.is_set()

    @property
    def ready(self) -> bool:
        """A finished job's result waits for :meth:`poll`."""
        return self._inline_result is not None or (self._job is not None and self._job.done.is_set())

    def submit(self, job: Callable[[], T]) -> bool:
        """Start ``job`` unless one is still running; return whether it started."""
        if self.busy:
            return False
        if not self.background:
            self._inline_result = self._timed(job)()
            return True
        if self._worker is None:
            self._worker = WorkerThread("curvecast-forecast")
        self._job = Job(self._timed(job), "a forecast")
        self._worker.hand(self._job)
        return True

    def _timed(self, job: Callable[[], T]) -> Callable[[], T]:
        def timed() -> T:
            start = self.cpu_clock()
            try:
                return job()
            finally:
                self.last_cost = self.cpu_clock() - start

        return timed

    def poll(self) -> T | None:
        """The result of the last finished job, once; None while it runs or when there is nothing new."""
        if self._inline_result is not None:
            result, self._inline_result = self._inline_result, None
            return result
        if self._job is None or not self._job.done.is_set():
            return None
        job, self._job = self._job, None
        return job.result

    def drain(self, timeout: float) -> T | None:
        """Wait at most ``timeout`` seconds for the job in flight and return its result; a job still running then is
        abandoned (its result will never be returned) and None comes back."""
        if self._job is not None and not self._job.done.wait(timeout):
            self._job = None
            self.abandoned += 1
            self._stop_worker()  # still busy with the abandoned job: the next job gets a thread of its own
            return None
        return self.poll()

    def close(self) -> None:
        """Forget the job in flight, if any, and let the worker thread end once it is done (nothing is waited for)."""
        self._job = None
        self._stop_worker()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

