"""The forecast process: fits run in a child, off the training process's GIL; what it hands back is what an inline
fit gives; a stuck call is abandoned, a dead child replaced, and a child that cannot serve leaves the fit in a
thread, with a warning."""

from __future__ import annotations

import math
import os
import select
import signal
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.fit_process import MAX_DEATHS, ChildGone, FitProcess, shared_fit_process
from curvecast.live import runner as runner_module
from curvecast.live.runner import ForecastRunner
from tiny_models import TinyRegression, loader


def _signal_then_block(ready: str, release: str) -> str:
    """Run in the child: say it is inside the call (opening a FIFO waits for its reader), then wait for ``release``."""
    Path(ready).write_text("in")
    return Path(release).read_text()


class _TwoPartError(Exception):
    """Pickles, but does not unpickle (its ``__init__`` wants two arguments, its ``args`` hold one)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(a + b)


def _raise_two_part(**kwargs: object) -> None:
    raise _TwoPartError("a", "b")


def _read_fifo(path: Path, timeout: float = 60.0) -> str:
    """What the child writes into the FIFO at ``path``; fails after ``timeout`` s rather than hang the test."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        assert readable, "the child never entered the call"
        return os.read(fd, 16).decode()
    finally:
        os.close(fd)


@pytest.fixture
def child():
    process = FitProcess()
    yield process
    process.close()


def test_a_call_runs_in_the_child_and_hands_back_its_result_error_and_cost(child):
    pid, cpu = child.call(os.getpid)
    assert pid == child.pid != os.getpid()
    assert cpu >= 0.0
    with pytest.raises(ValueError, match="math domain error"):
        child.call(math.sqrt, -1.0)
    assert child.call(math.sqrt, 4.0)[0] == 2.0  # the child serves on after a failed call
    assert child.pid == pid


def test_a_keyword_argument_passed_again_arrives_whole_in_a_new_child_too(child):
    schedule = np.linspace(1.0, 0.0, 10_000)  # a long schedule, held by the child between calls
    assert child.call(dict, lrs=schedule, step=1)[0]["lrs"].sum() == schedule.sum()
    assert child.call(dict, lrs=schedule, step=2)[0]["lrs"].sum() == schedule.sum()
    other = schedule * 2.0
    assert child.call(dict, lrs=other, step=3)[0]["lrs"].sum() == other.sum()
    first = child.pid
    child.close()  # the next call starts another child, which holds nothing yet
    got = child.call(dict, lrs=other, step=4)[0]
    assert got["lrs"].sum() == other.sum()
    assert got["step"] == 4
    assert child.pid != first
    assert child.deaths == 0


def test_an_abandoned_call_returns_at_once_and_the_next_gets_a_fresh_child(child, tmp_path):
    ready, release = tmp_path / "ready", tmp_path / "release"
    os.mkfifo(ready)
    os.mkfifo(release)
    first_pid = child.call(os.getpid)[0]
    outcome: list[BaseException] = []

    def stuck_call() -> None:
        try:
            child.call(_signal_then_block, str(ready), str(release))
        except ChildGone as gone:
            outcome.append(gone)

    caller = threading.Thread(target=stuck_call)
    caller.start()
    assert _read_fifo(ready) == "in"  # the child is inside the call, blocked
    child.abandon("someone else")  # another caller's abandon leaves this call alone...
    assert child.pid is not None
    child.abandon()  # ...its own caller's kills it
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert len(outcome) == 1
    assert outcome[0].abandoned
    assert child.call(os.getpid)[0] not in (first_pid, os.getpid())
    assert child.deaths == 0


def test_an_abandon_with_no_call_in_flight_leaves_the_next_call_alone(child):
    child.call(os.getpid)
    child.abandon()  # nothing in flight: nothing to kill
    pid, _ = child.call(os.getpid)
    assert pid == child.pid


def test_a_death_is_counted_once_the_child_replaced_and_the_count_reset_by_a_call_served(child):
    with pytest.raises(ChildGone, match="died"):
        child.call(os._exit, 3)
    assert child.deaths == 1
    pid, _ = child.call(os.getpid)  # a fresh child, not the dead one's pipes
    assert pid == child.pid
    assert child.deaths == 0


def test_a_reply_that_will_not_unpickle_fails_its_call_and_keeps_the_child_in_step(child):
    a, b = np.ones(3), np.full(3, 2.0)
    assert child.call(dict, lrs=a)[0]["lrs"].sum() == 3.0
    with pytest.raises(RuntimeError, match="would not unpickle"):
        child.call(_raise_two_part, lrs=b)
    assert child.call(dict, lrs=a)[0]["lrs"].sum() == 3.0  # a, not the b the child holds since the failed call


def test_a_child_that_dies_in_calls_is_given_up_after_a_few_deaths(child):
    for death in range(1, MAX_DEATHS + 1):
        with pytest.raises(ChildGone, match="died") as gone:
            child.call(os._exit, 3)  # the child dies while the call is in flight
        assert not gone.value.abandoned
        assert child.deaths == death
    with pytest.raises(ChildGone, match=f"died {MAX_DEATHS} times in a row"):
        child.call(os.getpid)  # no child is started any more


def test_a_forecast_the_child_cannot_serve_runs_in_the_thread_with_one_warning(monkeypatch):
    gone = FitProcess()
    gone.deaths = MAX_DEATHS
    monkeypatch.setattr(runner_module, "shared_fit_process", lambda: gone)
    runner: ForecastRunner[float] = ForecastRunner(background=True)

    def one_job() -> float | None:  # the warning comes from the worker thread: submitted inside the block
        runner.submit(lambda: runner.compute(math.sqrt, 9.0))
        return runner.drain(timeout=30)

    with pytest.warns(CurvecastWarning, match="forecasts run in a thread from now on"):
        result = one_job()
    assert result == 3.0
    assert runner.last_cost is not None  # the thread's own CPU time, for the budget
    runner.close()


def test_a_live_run_forecasts_in_the_child_the_same_as_inline(quiet_trainer_kwargs):
    reports = {}
    for background in (True, False):
        pl.seed_everything(0)
        bundle = Curvecast(forecast_every=25, background=background, forecast_budget=None)
        bundle.cadence.end_wait = 60.0  # a low-priority child on a loaded machine: the last fit must not be abandoned
        pl.Trainer(max_steps=120, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader(n=960))
        reports[background] = bundle.last_report
    assert shared_fit_process().pid not in (None, os.getpid())  # the live run started the child and left it serving
    forked, inline = reports[True].forecast, reports[False].forecast
    assert reports[True].step == reports[False].step == 119
    assert forked.ok
    assert inline.ok
    assert forked.final == inline.final
    assert forked.model == inline.model


def test_training_start_starts_the_child_ahead_of_the_first_forecast(child, monkeypatch):
    monkeypatch.setattr(runner_module, "shared_fit_process", lambda: child)
    runner: ForecastRunner[int | None] = ForecastRunner(background=True)
    runner.prepare()  # at training start
    assert runner.submit(lambda: child.pid)  # runs after the start, on the same worker thread
    pid = runner.drain(timeout=60)
    assert pid is not None
    assert pid != os.getpid()
    child.prestart()  # running already: kept
    assert child.pid == pid
    runner.close()


def test_a_rank_that_does_not_forecast_starts_no_child(child, monkeypatch):
    from curvecast.history import RunHistory
    from curvecast.live.cadence import ForecastCadence

    monkeypatch.setattr(runner_module, "shared_fit_process", lambda: child)
    for rank_zero in (False, True):
        cadence = ForecastCadence(RunHistory(), lambda: None, lambda: 100, "loss", None, 10, background=True)
        cadence.start(forecasts=rank_zero)
        runner = cadence._runner
        assert runner.submit(lambda: child.pid)  # after the start, if any, on the same worker thread
        started = runner.drain(timeout=60) is not None
        assert started == rank_zero
        cadence.close()


def test_a_ctrl_c_at_the_terminal_leaves_the_child_serving(child):
    """SIGINT reaches the whole process group: the training shuts down gracefully, the child must not die of it."""
    pid, _ = child.call(os.getpid)
    os.kill(pid, signal.SIGINT)
    assert child.call(os.getpid)[0] == pid
    assert child.deaths == 0


def test_a_request_the_child_cannot_read_fails_that_call_and_the_child_serves_on(child, monkeypatch):
    """``fn`` must be importable in the child: one that is not fails its call, and the next call is served whole."""
    only_here = types.ModuleType("curvecast_test_only_in_this_process")  # in sys.modules here, on no path
    exec("def answer(**kwargs):\n    return 1", only_here.__dict__)
    monkeypatch.setitem(sys.modules, only_here.__name__, only_here)
    schedule = np.ones(4)
    child.call(dict, lrs=schedule)
    with pytest.raises(RuntimeError, match="would not unpickle in the forecast process"):
        child.call(only_here.answer, lrs=schedule)
    assert child.call(dict, lrs=schedule)[0]["lrs"].sum() == 4.0  # sent whole again: the child held nothing
    assert child.deaths == 0
