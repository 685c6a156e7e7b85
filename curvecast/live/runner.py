"""ForecastRunner: runs forecasting jobs off the training thread, one at a time, and hands back their results."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from curvecast.failsafe import warn_once
from curvecast.fit_process import MAX_DEATHS, ChildGone, shared_fit_process
from curvecast.worker_thread import Job, WorkerThread

__all__ = ["ForecastRunner"]

T = TypeVar("T")


class ForecastRunner(Generic[T]):
    """At most one job in flight; a job submitted while another runs is dropped, so a slow fit never queues up.

    The training thread only snapshots its arrays and calls :meth:`submit` and :meth:`poll`, which never wait; at the
    end of training :meth:`drain` waits for the job in flight, but only so long: a late job is abandoned (its result
    is dropped), never waited for without limit. A job's heavy call goes through :meth:`compute`, which in the
    background runs it in the forecast process (``curvecast.fit_process``): a fit in a thread of the training process
    holds its GIL and slowed small steps 2.5-fold.

    Args:
        background: run jobs in a worker thread; False runs them inline (deterministic, for tests and tiny runs).
    """

    # This thread's CPU time, read around a call run in this process: its cost whatever else runs (replaceable).
    cpu_clock: Callable[[], float] = staticmethod(time.thread_time)
    # Background calls go to the forecast process; False keeps them in the worker thread (tests that patch a fit).
    out_of_process: bool = True

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
            self._inline_result = job()
            return True
        self._job = Job(job, "a forecast")
        self._worker_thread().hand(self._job)
        return True

    def prepare(self) -> None:
        """Training starts: in the background, the worker thread starts the forecast process now (a job of its own,
        ahead of the first forecast's), so the first forecast does not wait for its imports."""
        if self.background and self.out_of_process:
            self._worker_thread().hand(Job(shared_fit_process().prestart, "starting the forecast process"))

    def _worker_thread(self) -> WorkerThread:
        if self._worker is None:
            self._worker = WorkerThread("curvecast-forecast")
        return self._worker

    def compute(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any | None:
        """``fn(*args, **kwargs)``, from inside a job: in the forecast process in the background (in this thread when
        that process cannot serve, with a warning, once); its CPU seconds become :attr:`last_cost`. None when the
        job was abandoned while its call ran (its result would be dropped anyway)."""
        if self.background and not self._current(threading.current_thread()):
            return None  # abandoned before its call began: the result would be dropped
        if self.background and self.out_of_process:
            child = shared_fit_process()
            try:
                result, self.last_cost = child.call_for(self, fn, args, kwargs)
                return result
            except ChildGone as gone:
                if gone.abandoned:
                    return None
                for_good = child.deaths >= MAX_DEATHS
                warn_once(f"curvecast: {gone}; this forecast runs in a thread of the training process instead.",
                          key=f"fit-process-{'gone' if for_good else 'died'}")  # fmt: skip
        start = self.cpu_clock()
        try:
            return fn(*args, **kwargs)
        finally:
            self.last_cost = self.cpu_clock() - start

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
            if self.out_of_process:
                shared_fit_process().abandon(self)  # a stuck or starved fit must not hold the child for later calls
            self._stop_worker()  # still busy with the abandoned job: the next job gets a thread of its own
            return None
        return self.poll()

    def close(self) -> None:
        """Forget the job in flight, if any, and let the worker thread end once it is done (nothing is waited for)."""
        self._job = None
        self._stop_worker()

    def _current(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is this runner's worker (an abandoned job's thread no longer is)."""
        return self._worker is not None and self._worker.thread is thread

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
