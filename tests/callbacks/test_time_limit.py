"""A run with a time limit (``Trainer(max_time=...)``, or a ``Timer`` callback with a duration) ends at the step its
time runs out. Without a step or epoch limit it was told "no forecasts in this run" and had none; it now forecasts to
the step the pace of its steps reaches when the time runs out, and where the time limit comes before its step limit,
to that step rather than to one it will never reach. Lightning's own ``Timer`` stops these runs, on a clock driven by
the steps taken, so that the run's end is the same on a loaded machine."""

from __future__ import annotations

import logging
import warnings

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from curvecast import Curvecast
from curvecast.callbacks.measures.time_limit import TimeLimit
from curvecast.failsafe import CurvecastWarning
from tiny_models import TinyRegression, loader

START_S, SLOW_STEPS, SLOW_S, STEP_S = 0.2, 20, 0.02, 0.01  # a slow start (compilation, warm caches), then the pace


def seconds_after(steps: int) -> float:
    """The training time ``steps`` steps take: a slow first few, then a steady pace."""
    return START_S + SLOW_S * min(steps, SLOW_STEPS) + STEP_S * max(steps - SLOW_STEPS, 0)


class StepClockTimer(Timer):
    """Lightning's ``Timer`` on a clock that the steps drive (``seconds_after``): it stops the run as a real one
    does, at the first batch past its duration."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._trainer = trainer

    def time_elapsed(self, stage: str = "train") -> float:
        trainer = getattr(self, "_trainer", None)
        return 0.0 if trainer is None else seconds_after(trainer.global_step)


DURATION_S = 2.5
LAST_STEP = SLOW_STEPS + round((DURATION_S - START_S - SLOW_S * SLOW_STEPS) / STEP_S)  # 210: where the time runs out


def fit(quiet_trainer_kwargs, caplog, **limits) -> tuple[Curvecast, pl.Trainer]:
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=10, forecast_budget=None)
    kwargs = {**quiet_trainer_kwargs, **limits}
    trainer = pl.Trainer(callbacks=[bundle, StepClockTimer(duration={"seconds": DURATION_S})], **kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings():
        warnings.simplefilter("error", CurvecastWarning)  # nothing to fix: no warning
        trainer.fit(TinyRegression(), loader())
    return bundle, trainer


def test_a_run_with_only_a_time_limit_is_forecast_to_where_its_time_runs_out(quiet_trainer_kwargs, caplog):
    bundle, trainer = fit(quiet_trainer_kwargs, caplog, max_steps=-1)
    assert trainer.global_step == LAST_STEP
    said = [r.getMessage() for r in caplog.records]
    assert any("the run ends at its time limit (`max_time`)" in m for m in said)
    assert any("where the time limit (`max_time`) ends the run" in m for m in said)
    forecast = [r for r in bundle.reports if r.forecast is not None and r.forecast.ok]
    assert forecast
    assert forecast[0].step < 40
    # Read from the later part of the time, the pace is soon the steady one: from step 40 (a fifth of the run) each
    # horizon is within 2% of the end, where the pace of the whole fit, slow start and all, says 125-208.
    assert all(abs(r.horizon - LAST_STEP) <= 0.02 * LAST_STEP for r in forecast if r.step >= 40)
    last = bundle.reports[-1]
    assert last.ended_by is None  # the time limit was the run's planned end
    assert last.horizon == LAST_STEP


def test_a_time_limit_before_the_step_limit_is_the_end_forecast_to(quiet_trainer_kwargs, caplog):
    bundle, trainer = fit(quiet_trainer_kwargs, caplog, max_steps=1000)
    assert trainer.global_step == LAST_STEP
    forecast = [r for r in bundle.reports if r.forecast is not None and r.forecast.ok]
    assert forecast
    assert all(r.horizon < 1000 for r in forecast if r.step >= 24)
    assert forecast[-1].horizon == pytest.approx(LAST_STEP, rel=0.02)
    assert bundle.reports[-1].ended_by is None
    said = [r.getMessage() for r in caplog.records]
    assert sum("where the time limit (`max_time`) ends the run" in m for m in said) == 1  # on taking over, once


def test_a_step_limit_before_the_time_limit_stays_the_end(quiet_trainer_kwargs, caplog):
    bundle, trainer = fit(quiet_trainer_kwargs, caplog, max_steps=100)
    assert trainer.global_step == 100
    assert {r.horizon for r in bundle.reports} == {100}
    assert not any("time limit" in r.getMessage() for r in caplog.records)


class FakeTimer:
    def __init__(self, duration: float) -> None:
        self.duration, self.elapsed = duration, 0.0

    def time_elapsed(self, stage: str = "train") -> float:
        return self.elapsed

    def time_remaining(self, stage: str = "train") -> float:
        return self.duration - self.elapsed


def test_the_pace_is_read_over_the_later_part_of_the_time():
    timer = FakeTimer(duration=10 * DURATION_S)
    limit = TimeLimit(timer)
    estimates = []
    for step in range(10_000):  # a look at every step
        timer.elapsed = seconds_after(step)
        if timer.time_remaining() <= 0:
            break
        estimates.append(limit.last_step(step))
    end = step
    assert end == 2460
    assert estimates[:85] == [None] * 85  # nothing before 5% of the time has passed
    # From then on, within 2% of the end; the pace of the whole fit says 1786 at step 100.
    assert all(abs(e - end) <= 0.02 * end for e in estimates[85:])
    at_100 = 100 + 100 / seconds_after(100) * (timer.duration - seconds_after(100))
    assert abs(at_100 - end) > 0.2 * end
    assert len(limit._seconds) < 0.7 * end  # the looks before the later half are let go (a few at a time)


def test_a_timer_that_says_nothing_usable_gives_no_end():
    timer = FakeTimer(duration=float("inf"))
    limit = TimeLimit(timer)
    for step in range(200):
        timer.elapsed = float(step)
        assert limit.last_step(step) is None
