"""WatchScorer: the anomaly detectors score each batch of points on a worker thread while the next step trains."""

from __future__ import annotations

from collections.abc import Callable

from curvecast.failsafe import warn_once
from curvecast.live.stability_watch import StabilityWatch
from curvecast.worker_thread import SerialJobs

__all__ = ["WatchScorer"]


class WatchScorer:
    """Feed a :class:`StabilityWatch` off the training thread, one batch of points at a time.

    Points come from the history's listener, a flush at a time (the losses and gradient norms of up to
    :func:`~curvecast._lightning.host_cadence` steps), and wait in a list. :meth:`hand_over`, at the end of a training
    batch, gives them to the worker thread; the next read of the watch (:meth:`settle`, at the end of the next batch as
    a rule) first waits for that batch, which is scored by then: scoring, 0.03-0.05 ms a point in pure Python,
    overlaps the next step's forward and backward, whose tensor ops release the GIL. Whatever the threads' timing, the
    results are those of scoring inline, one step later: every read settles first. A spike or a NaN keeps its own
    step; a stop on a divergence comes one step later than inline scoring would give it.

    Args:
        watch: the detectors.
        background: score on a worker thread; False scores each point as it arrives (a loss waits for its step's
            gradient norm until the watch is read), deterministic to the step.
    """

    def __init__(self, watch: StabilityWatch, background: bool = True) -> None:
        self._watch = watch
        self.background = background
        self._points: list[tuple[str, int, float]] = []
        self._jobs = SerialJobs("curvecast-watch", "anomaly detection")
        self.unread = False  # points were scored (or handed over to be) since the last `read`

    @property
    def watch(self) -> StabilityWatch:
        """The detectors, with every point handed over scored."""
        self.settle()
        return self._watch

    @watch.setter
    def watch(self, watch: StabilityWatch) -> None:
        """Score with ``watch`` from now on (a restored one); points not yet handed over go to it."""
        self.settle()
        self._watch = watch

    def read(self) -> StabilityWatch:
        """The detectors, with every point handed over scored, for a look at what they found (see :attr:`unread`)."""
        self.unread = False
        return self.watch

    def feed(self, name: str, step: int, value: float) -> None:
        """Take one recorded point (a listener of :class:`~curvecast.history.RunHistory`)."""
        if self.background:
            self._points.append((name, step, value))
        else:
            _score(self._watch, [(name, step, value)], settle=False)  # a loss waits for its step's norm till hand-over
            self.unread = True

    def hand_over(self) -> None:
        """Start scoring the points taken since the last hand-over on the worker thread (every sensor has recorded
        its points of the batch by now: a point still waiting for its partner has none)."""
        if not self._points:
            return
        self.settle()  # one batch at a time: the points of a series reach its detector in order
        points, self._points = self._points, []
        watch = self._watch
        self._jobs.hand(lambda: _score(watch, points))
        self.unread = True

    def settle(self) -> None:
        """Wait for the batch being scored, if any (it is done already as a rule: it had a whole step). Inline, score
        the points still waiting for a partner: the watch is read once every sensor has recorded its batch."""
        if self.background:
            self._jobs.settle()
        else:
            _safely(self._watch.score_waiting)

    def score_now(self) -> None:
        """Score every point taken so far, the ones not yet handed over inline (at validation, at the end, before a
        checkpoint: the reports and the saved state see all of them)."""
        self.settle()
        points, self._points = self._points, []
        _score(self._watch, points)
        self.unread = self.unread or bool(points)

    def close(self) -> None:
        """Score what is left and let the worker thread end."""
        self.score_now()
        self._jobs.close()


def _score(watch: StabilityWatch, points: list[tuple[str, int, float]], settle: bool = True) -> None:
    """Feed ``points`` to ``watch``; with ``settle`` (a whole batch of points), score what waits for a partner too."""
    for point in points:
        _safely(watch.feed, *point)
    if settle:
        _safely(watch.score_waiting)


def _safely(call: Callable[..., None], *args: object) -> None:
    try:
        call(*args)
    except Exception as error:  # noqa: BLE001 - a detector failure must not lose the other points, nor the run
        warn_once(f"curvecast: anomaly detection failed and was skipped ({type(error).__name__}: {error})")
