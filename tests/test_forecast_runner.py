"""The forecast worker never holds up training: a late job is abandoned at the end, the last forecast made inline."""

from __future__ import annotations

import threading

import pytorch_lightning as pl

import curvecast.live.cadence
from curvecast import Curvecast
from curvecast.forecasting import Forecaster
from curvecast.live.runner import ForecastRunner
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


def test_training_ends_even_with_the_worker_stuck_and_forecasts_the_last_step_inline(quiet_trainer_kwargs, monkeypatch):
    stuck = threading.Event()  # never set while training: a worker forecast blocks until the test ends
    real_fit = Forecaster.fit

    def fit(self, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            stuck.wait()
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Forecaster, "fit", fit)
    monkeypatch.setattr(curvecast.live.cadence, "END_WAIT_S", 0.1)
    bundle = Curvecast(forecast_every=10, background=True)
    try:
        pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader(n=320))
    finally:
        stuck.set()
    assert bundle.cadence.abandoned == 1
    assert bundle.last_report is not None
    assert bundle.last_report.step == 39  # made inline, from the last observed step
    assert bundle.last_report.forecast.ok


def test_forecasts_keep_to_their_share_of_the_run():
    """A fit that cost 1 s of CPU, with a 2% budget, waits 50 s of training before the next, whatever the steps."""
    from curvecast.history import RunHistory
    from curvecast.live.cadence import ForecastCadence

    wall, cpu_reads = [0.0], [0]

    def cpu_clock():  # read before and after each job: every job costs 1 s of CPU
        cpu_reads[0] += 1
        return float(cpu_reads[0])

    history = RunHistory()
    cadence = ForecastCadence(history, lambda: None, lambda: 1000, "loss", None, 10, background=False, budget=0.02)
    cadence.clock = lambda: wall[0]
    cadence._runner.cpu_clock = cpu_clock
    started = []
    for step in range(200):
        history.append("loss", step, 1.0 / (step + 1))
        wall[0] += 0.5  # half a second per step
        cadence.submit_if_due(at_validation=False)
        if cadence.poll() is not None:
            started.append(step)
    assert started == [10, 110]  # 100 steps = 50 s between forecasts, not every 10 steps
