"""Work off the training thread: a job, the daemon thread that runs jobs in turn, and a serial queue of jobs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from curvecast.failsafe import warn_once

__all__ = ["Job", "SerialJobs", "WorkerThread"]

T = TypeVar("T")


class Job(Generic[T]):
    """One job, its result, and whether it has finished; a failure is a warning naming ``what``, never a crash.

    Args:
        job: the work.
        what: what the job does, for the warning (``"a forecast"``).
    """

    def __init__(self, job: Callable[[], T], what: str = "a background job") -> None:
        self.job = job
        self.what = what
        self.result: T | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.job()
        except Exception as error:  # noqa: BLE001 - curvecast's own failure must never reach the run
            key = self.what.replace(" ", "-")
            warn_once(f"curvecast: {self.what} failed and was skipped ({type(error).__name__}: {error})", key=key)
        finally:
            self.done.set()


class WorkerThread:
    """One daemon thread running the jobs it is handed in turn: started once rather than per job, since starting a
    thread waits for it to run (milliseconds on a busy machine, all of it on the training thread). A daemon, so a job
    still running never holds up the end of the process."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Job[Any] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def hand(self, job: Job[Any]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """End the thread once the jobs handed to it are done (nothing is waited for here)."""
        self._jobs.put(None)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.run()


class SerialJobs:
    """Jobs run in the order they are handed, on one worker thread started with the first of them.

    Args:
        name: the thread's name (``curvecast-...``).
        what: what the jobs do, for the warning when one fails.
    """

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.what = what
        self._worker: WorkerThread | None = None
        self._last: Job[Any] | None = None

    def hand(self, job: Callable[[], Any]) -> None:
        if self._worker is None:
            self._worker = WorkerThread(self.name)
        self._last = Job(job, self.what)
        self._worker.hand(self._last)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for every job handed so far (at most ``timeout`` seconds); return whether they are all done."""
        last = self._last
        if last is None or last.done.wait(timeout):
            self._last = None
            return True
        return False

    def close(self, timeout: float | None = None) -> bool:
        """Wait for the jobs handed so far, then let the thread end; return whether they all finished in time (a
        thread still busy ends on its own, and a later job gets a new one)."""
        done = self.settle(timeout)
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        return done
