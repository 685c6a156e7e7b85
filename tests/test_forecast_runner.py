"""The forecast worker never holds up training: a late job is abandoned at the end, and nothing is fitted inline."""

from __future__ import annotations

import threading

import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.forecasting import Forecaster
from curvecast.live.runner import ForecastRunner
from run_helpers import read_events, tiny_trainer
from tiny_models import TinyRegression, loader


def test_a_late_job_is_abandoned_not_waited_for():
    release = threading.Event()
    runner: ForecastRunner[str] = ForecastRunner(background=True)
    assert runner.submit(lambda: release.wait() and "late")
    assert not runner.submit(lambda: "dropped")  # one job at a time
    assert runner.drain(timeout=0.05) is None
    assert runner.abandoned == 1
    assert not runner.busy
    release.set()
    assert runner.poll() is None  # the abandoned job's result never comes back
    assert runner.submit(lambda: "next")
    assert runner.drain(timeout=5.0) == "next"


def test_jobs_run_in_turn_on_one_worker_thread_that_ends_on_close():
    runner: ForecastRunner[threading.Thread] = ForecastRunner(background=True)
    threads = []
    for _ in range(3):
        assert runner.submit(threading.current_thread)
        threads.append(runner.drain(timeout=5.0))
    assert threads[0] is not threading.main_thread()
    assert threads[0] is threads[1] is threads[2]  # started once: a thread start waits on the training thread
    runner.close()
    threads[0].join(timeout=5.0)
    assert not threads[0].is_alive()


def test_training_ends_in_bounded_time_with_every_fit_stuck_and_says_so(quiet_trainer_kwargs, monkeypatch):
    stuck = threading.Event()  # never set while training: every fit blocks until the test ends, inline ones too

    def fit(self, *args, **kwargs):
        stuck.wait()

    monkeypatch.setattr(Forecaster, "fit", fit)
    monkeypatch.setattr(ForecastRunner, "out_of_process", False)  # the patched fit lives in this process only
    bundle = Curvecast(forecast_every=10, background=True, forecast_budget=None)  # a fit starts at step 10
    bundle.cadence.end_wait = 0.2
    trainer = pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs)
    try:
        with pytest.warns(CurvecastWarning, match=r"still running 0\.2 s after the end of training was abandoned"):
            trainer.fit(TinyRegression(), loader(n=320))  # returns: nothing is fitted inline on the training thread
    finally:
        stuck.set()
    assert trainer.global_step == 40
    assert bundle.cadence.abandoned == 2  # the one in flight, then the one of the last step
    assert bundle.last_report is None  # no forecast ever finished


def test_the_curve_reaches_tensorboard_to_the_last_step_when_the_last_forecasts_are_abandoned(tmp_path, monkeypatch):
    """Forecasts that come late on a busy machine (DDP workers sharing two cores) are abandoned at the end; the loss
    recorded since the last report still reaches the event file, with a last report that has no forecast."""
    stuck = threading.Event()

    def fit(self, *args, **kwargs):
        stuck.wait()

    monkeypatch.setattr(Forecaster, "fit", fit)
    monkeypatch.setattr(ForecastRunner, "out_of_process", False)  # the patched fit lives in this process only
    bundle = Curvecast(forecast_every=10, background=True, forecast_budget=None)
    bundle.cadence.end_wait = 0.2
    trainer = tiny_trainer(tmp_path, [bundle], 40)
    try:
        with pytest.warns(CurvecastWarning, match="abandoned"):
            trainer.fit(TinyRegression(), loader(n=320))
    finally:
        stuck.set()
    assert bundle.last_report is None  # no forecast came back
    last = bundle.reports[-1]
    assert (last.step, last.is_last, last.forecast) == (39, True, None)
    loss = read_events(tmp_path / "tb" / "version_0").Scalars("curvecast/loss")
    assert loss[-1].step == 39


def test_the_last_step_is_forecast_in_the_worker_after_a_late_one(quiet_trainer_kwargs, monkeypatch):
    first = threading.Event()  # the forecast in flight at the end is stuck; the one of the last step is not
    real_fit = Forecaster.fit
    calls = []

    def fit(self, steps, *args, **kwargs):
        calls.append(threading.current_thread() is threading.main_thread())
        if len(calls) == 1:
            first.wait()
        return real_fit(self, steps, *args, **kwargs)

    monkeypatch.setattr(Forecaster, "fit", fit)
    monkeypatch.setattr(ForecastRunner, "out_of_process", False)  # the patched fit lives in this process only
    bundle = Curvecast(forecast_every=30, background=True, forecast_budget=None)
    bundle.cadence.end_wait = 2.0
    try:
        pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader(n=320))
    finally:
        first.set()
    assert not any(calls)  # every fit ran in the worker
    assert bundle.last_report is not None
    assert bundle.last_report.step == 39  # the last observed step, forecast after the stuck one was left
    assert bundle.last_report.forecast.ok


def test_forecasts_keep_to_their_share_of_the_run(monkeypatch):
    """A fit that cost 1 s of CPU, with a 2% budget, waits 50 s of training before the next, whatever the steps."""
    from curvecast.history import RunHistory
    from curvecast.live.cadence import ForecastCadence

    wall, cpu_reads = [0.0], [0]

    def cpu_clock():  # read before and after each job: every job costs 1 s of CPU
        # Counted on this thread alone: a worker thread of an earlier test, released late, reads the patched clock too.
        if threading.current_thread() is threading.main_thread():
            cpu_reads[0] += 1
        return float(cpu_reads[0])

    monkeypatch.setattr(ForecastRunner, "cpu_clock", staticmethod(cpu_clock))
    history = RunHistory()
    cadence = ForecastCadence(history, lambda: None, lambda: 1000, "loss", None, 10, background=False, budget=0.02)
    cadence.clock = lambda: wall[0]
    started = []
    for step in range(200):
        history.append("loss", step, 1.0 / (step + 1))
        wall[0] += 0.5  # half a second per step
        cadence.submit_if_due(at_validation=False)
        if cadence.poll() is not None:
            started.append(step)
    assert started == [10, 110]  # 100 steps = 50 s between forecasts, not every 10 steps


def test_the_first_forecast_keeps_to_its_share_too():
    """Before any fit has been timed, the first is budgeted at FIRST_FIT_S from the start of training: with a 1%
    budget it waits 10 s of training (step 19 at 0.5 s a step), not the first multiple of `forecast_every`."""
    from curvecast.history import RunHistory
    from curvecast.live.cadence import FIRST_FIT_S, ForecastCadence

    history = RunHistory()
    cadence = ForecastCadence(history, lambda: None, lambda: 1000, "loss", None, 10, background=False, budget=0.01)
    wall = [0.0]
    cadence.clock = lambda: wall[0]
    cadence.start()
    first = None
    for step in range(60):
        history.append("loss", step, 1.0 / (step + 1))
        wall[0] += 0.5
        cadence.submit_if_due(at_validation=False)
        if cadence.poll() is not None:
            first = step
            break
    assert pytest.approx(10.0) == FIRST_FIT_S / 0.01
    assert first == 19
