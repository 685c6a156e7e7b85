"""ForecastRunner: runs forecasting jobs off the training thread, one at a time, and hands back their results."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from curvecast.failsafe import warn_once

__all__ = ["ForecastRunner"]

T = TypeVar("T")


class ForecastRunner(Generic[T]):
    """At most one job in flight; a job submitted while another runs is dropped, so a slow fit never queues up.

    The training thread only snapshots its arrays and calls :meth:`submit` and :meth:`poll`, which never wait. numpy and
    scipy release the GIL in their heavy loops, so a fit costs the training step little.

    Args:
        background: run jobs in a worker thread; False runs them inline (deterministic, for tests and tiny runs).
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._executor: ThreadPoolExecutor | None = None
        self._future: Future[T] | None = None
        self._inline_result: T | None = None

    @property
    def busy(self) -> bool:
        return self._future is not None and not self._future.done()

    def submit(self, job: Callable[[], T]) -> bool:
        """Start ``job`` unless one is still running; return whether it started."""
        if self.busy:
            return False
        if not self.background:
            self._inline_result = self._run(job)
            return True
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curvecast-forecast")
        self._future = self._executor.submit(self._run, job)
        return True

    def poll(self) -> T | None:
        """The result of the last finished job, once; None while it runs or when there is nothing new."""
        if self._inline_result is not None:
            result, self._inline_result = self._inline_result, None
            return result
        if self._future is None or not self._future.done():
            return None
        future, self._future = self._future, None
        return future.result()

    def drain(self) -> T | None:
        """Wait for the job in flight (if any) and return its result."""
        if self._future is not None:
            self._future.exception()  # waits; `_run` never raises
        return self.poll()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @staticmethod
    def _run(job: Callable[[], T]) -> T | None:
        try:
            return job()
        except Exception as error:  # noqa: BLE001 - a failed forecast is a warning, never a crash of the run
            warn_once(f"curvecast: a forecast failed and was skipped ({type(error).__name__}: {error})", key="forecast")
            return None
