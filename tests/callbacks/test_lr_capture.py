import logging
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.optim import lr_scheduler as S

from curvecast import Curvecast
from curvecast.callbacks import LearningRateCapture
from curvecast.callbacks.measures.schedule_replay import REPLAY_BUDGET, PlannedSchedule, replay_schedule
from curvecast.failsafe import CurvecastWarning
from curvecast.forecasting.knots import MAX_SAMPLES, SampledKnots
from run_helpers import tiny_trainer
from tiny_models import StopsAt, TinyRegression, loader

MAX_STEPS = 24


def warmup_cosine(optimizer):
    def factor(step):
        return (step + 1) / 5 if step < 5 else 0.5 * (1 + math.cos(math.pi * min((step - 5) / 19, 1.0)))

    return S.LambdaLR(optimizer, factor)


def warmup_stable_decay(optimizer):
    return S.LambdaLR(optimizer, lambda s: min((s + 1) / 4, 1.0, max((MAX_STEPS - s) / 6, 0.0)))


SCHEDULERS = {
    "lambda_warmup_cosine": (warmup_cosine, "step"),
    "lambda_wsd": (warmup_stable_decay, "step"),
    "linear": (lambda o: S.LinearLR(o, start_factor=0.1, total_iters=10), "step"),
    "cosine": (lambda o: S.CosineAnnealingLR(o, T_max=MAX_STEPS, eta_min=0.001), "step"),
    "cosine_restarts": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=8), "step"),
    "one_cycle": (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=MAX_STEPS), "step"),
    # Lands below 0 after its last step (the LR of the horizon step, which no step trains with).
    "one_cycle_linear": (
        lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=MAX_STEPS, pct_start=0.05, anneal_strategy="linear"),
        "step",
    ),
    "step": (lambda o: S.StepLR(o, step_size=5, gamma=0.5), "step"),
    "multistep": (lambda o: S.MultiStepLR(o, milestones=[6, 15], gamma=0.3), "step"),
    "exponential": (lambda o: S.ExponentialLR(o, gamma=0.9), "step"),
    "sequential": (
        lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.01, total_iters=6), S.CosineAnnealingLR(o, T_max=18)], milestones=[6]
        ),
        "step",
    ),
    "epoch_step": (lambda o: S.StepLR(o, step_size=1, gamma=0.5), "epoch"),
}


class Scheduled(TinyRegression):
    def __init__(self, make_scheduler, interval):
        super().__init__()
        self.make_scheduler, self.interval = make_scheduler, interval

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=0.05, betas=(0.9, 0.95))
        scheduler = {"scheduler": self.make_scheduler(optimizer), "interval": self.interval}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_replayed_schedule_matches_the_lrs_the_run_then_used(name, quiet_trainer_kwargs):
    capture = LearningRateCapture()
    model = Scheduled(*SCHEDULERS[name])
    # 8 batches per epoch, so the epoch-interval scheduler steps three times.
    pl.Trainer(max_steps=MAX_STEPS, callbacks=[capture], **quiet_trainer_kwargs).fit(model, loader(n=64))
    planned = capture.schedule()
    assert planned is not None
    assert len(planned) == MAX_STEPS + 1
    assert planned.dense  # a run within the replay budget: one replayed LR per step, as before
    used = capture.history.series("lr")
    np.testing.assert_array_equal(used.steps, np.arange(MAX_STEPS))
    np.testing.assert_allclose(planned.lrs[:MAX_STEPS], used.values, rtol=1e-9, atol=1e-15)
    # A fresh run is replayed from its first step.
    assert capture.planned.start == 0


def test_replay_from_a_resumed_run_joins_the_recorded_past(tmp_path, quiet_trainer_kwargs):
    from pytorch_lightning.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1)
    first = LearningRateCapture()
    tiny_trainer(tmp_path, [first, checkpoint], 10, logger=False, enable_checkpointing=True).fit(
        Scheduled(*SCHEDULERS["lambda_warmup_cosine"]), loader(n=64)
    )
    second = LearningRateCapture()
    pl.Trainer(max_steps=MAX_STEPS, callbacks=[second], **quiet_trainer_kwargs).fit(
        Scheduled(*SCHEDULERS["lambda_warmup_cosine"]), loader(n=64), ckpt_path=checkpoint.best_model_path
    )
    assert second.planned.start == 10
    reference = LearningRateCapture()
    pl.Trainer(max_steps=MAX_STEPS, callbacks=[reference], **quiet_trainer_kwargs).fit(
        Scheduled(*SCHEDULERS["lambda_warmup_cosine"]), loader(n=64)
    )
    np.testing.assert_allclose(second.schedule().lrs, reference.schedule().lrs, rtol=1e-9)


def test_without_a_scheduler_the_lr_is_constant_and_known(quiet_trainer_kwargs):
    capture = LearningRateCapture()
    pl.Trainer(max_steps=5, callbacks=[capture], **quiet_trainer_kwargs).fit(TinyRegression(lr=0.02), loader())
    np.testing.assert_array_equal(capture.schedule().lrs, np.full(6, 0.02))
    assert not capture.schedule().drop_ahead(0)


def test_a_run_without_a_length_says_it_has_no_forecasts_and_why(quiet_trainer_kwargs):
    capture = LearningRateCapture()
    kwargs = {**quiet_trainer_kwargs, "max_steps": -1, "max_epochs": -1}
    trainer = pl.Trainer(callbacks=[capture, StopsAt(12)], **kwargs)
    with pytest.warns(UserWarning, match=r"no forecasts in this run: the run length is unknown \(no `max_steps` nor"):
        trainer.fit(TinyRegression(), loader())
    assert capture.horizon is None
    assert capture.schedule() is None


def test_reduce_on_plateau_cannot_be_replayed_and_says_so(quiet_trainer_kwargs, caplog):
    # Said at info, not warned: nothing for the user to fix (every ReduceLROnPlateau run was warned).
    capture = LearningRateCapture()
    trainer = pl.Trainer(max_steps=5, callbacks=[capture], limit_val_batches=1, **quiet_trainer_kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings():
        warnings.simplefilter("error", CurvecastWarning)
        trainer.fit(TinyRegression(scheduler="plateau"), loader(), loader(n=8))
    said = [r for r in caplog.records if "ReduceLROnPlateau depends on future metrics" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO]
    assert capture.schedule() is None
    assert "ReduceLROnPlateau" in capture.planned.reason
    # The LRs actually used are still recorded.
    assert capture.history.num_points("lr") == 5


def test_an_lr_drop_ahead_is_seen_until_it_has_happened():
    capture = LearningRateCapture()
    capture.horizon = 10
    from curvecast.callbacks.measures.schedule_replay import PlannedSchedule

    capture.planned = PlannedSchedule(0, np.array([1.0] * 6 + [0.1] * 5))
    assert capture.schedule().drop_ahead(0)
    assert capture.schedule().drop_ahead(5)
    assert not capture.schedule().drop_ahead(6)


def test_state_dict_round_trip():
    capture = LearningRateCapture()
    capture.history.extend("lr", [0, 1, 2], [0.1, 0.2, 0.3])
    restored = LearningRateCapture()
    restored.load_state_dict(capture.state_dict())
    series = restored.history.series("lr")
    np.testing.assert_array_equal(series.steps, [0, 1, 2])
    np.testing.assert_array_equal(series.values, [0.1, 0.2, 0.3])


# -- long runs: the replay stops after REPLAY_BUDGET steps and jumps ahead ------------------------------------------

LONG = 20_000  # a long run, scaled down: replayed for BUDGET steps, jumped ahead for the rest
BUDGET = 300


class CosineByItself(S.LRScheduler):
    """A custom scheduler whose LR is a function of its step count alone."""

    def get_lr(self):
        return [base * 0.5 * (1 + math.cos(math.pi * min(self.last_epoch / LONG, 1.0))) for base in self.base_lrs]


class ChainedByItself(S.LRScheduler):
    """A custom scheduler that updates the LR it finds: only replaying every step tells where it goes."""

    def get_lr(self):
        return [group["lr"] * 0.9999 for group in self.optimizer.param_groups]


def _counting_lambda():
    calls = [0]

    def factor(step):  # state of its own: the LR depends on how often it was asked, not only on the step
        calls[0] += 1
        return 1.0 / (1.0 + 1e-4 * calls[0])

    return factor


JUMPABLE = {
    "lambda_warmup_cosine": (
        lambda o: S.LambdaLR(o, lambda s: min((s + 1) / 500, 1) * 0.5 * (1 + math.cos(math.pi * min(s / LONG, 1)))),
        "step",
        1,
    ),
    "linear": (lambda o: S.LinearLR(o, start_factor=0.1, total_iters=3000), "step", 1),
    "cosine": (lambda o: S.CosineAnnealingLR(o, T_max=LONG, eta_min=1e-3), "step", 1),
    "cosine_restarts": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=1500), "step", 1),
    "cosine_restarts_doubling": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=700, T_mult=2), "step", 1),
    "one_cycle": (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=LONG), "step", 1),
    "one_cycle_ends_early": (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=5000), "step", 1),
    "step": (lambda o: S.StepLR(o, step_size=1000, gamma=0.5), "step", 1),
    "multistep": (lambda o: S.MultiStepLR(o, milestones=[3000, 15000], gamma=0.3), "step", 1),
    "exponential": (lambda o: S.ExponentialLR(o, gamma=0.9995), "step", 1),
    "polynomial": (lambda o: S.PolynomialLR(o, total_iters=LONG, power=2), "step", 1),
    "constant": (lambda o: S.ConstantLR(o, factor=0.3, total_iters=4000), "step", 1),
    "cyclic": (lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=2500), "step", 1),
    "sequential": (
        lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.01, total_iters=600), S.CosineAnnealingLR(o, T_max=LONG - 600)], [600]
        ),
        "step",
        1,
    ),
    "epoch_step": (lambda o: S.StepLR(o, step_size=2, gamma=0.8), "epoch", 1),
    "epoch_cosine": (lambda o: S.CosineAnnealingLR(o, T_max=LONG // 37), "epoch", 1),
    "every_3_steps": (lambda o: S.CosineAnnealingLR(o, T_max=LONG // 3), "step", 3),
    "custom_function_of_its_step": (lambda o: CosineByItself(o), "step", 1),
    "none": (None, "step", 1),
}
STATEFUL = {
    "multiplicative": (lambda o: S.MultiplicativeLR(o, lambda e: 0.9999), "step", 1),
    "chained": (lambda o: S.ChainedScheduler([S.ExponentialLR(o, 0.9999), S.StepLR(o, 3000, 0.5)]), "step", 1),
    "custom_chained": (lambda o: ChainedByItself(o), "step", 1),
    "lambda_with_state": (lambda o: S.LambdaLR(o, _counting_lambda()), "step", 1),
}


def _trainer(make_scheduler, interval, frequency, extra=None):
    """The trainer facts the replay reads (37 batches per epoch), without running anything."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.05)
    made = [] if make_scheduler is None else [make_scheduler(optimizer)]
    made += [] if extra is None else [extra(optimizer)]
    configs = [
        SimpleNamespace(scheduler=s, interval=interval, frequency=frequency, reduce_on_plateau=False) for s in made
    ]
    return SimpleNamespace(
        optimizers=[optimizer],
        lr_scheduler_configs=configs,
        lightning_module=SimpleNamespace(automatic_optimization=True),
        num_training_batches=37,
        accumulate_grad_batches=1,
    )


@pytest.mark.parametrize("name", sorted(JUMPABLE))
def test_a_long_schedule_jumped_ahead_matches_its_replay_of_every_step(name):
    full = replay_schedule(_trainer(*JUMPABLE[name]), 0, LONG, budget=LONG)
    jumped = replay_schedule(_trainer(*JUMPABLE[name]), 0, LONG, budget=BUDGET)
    assert jumped.known, jumped.reason
    assert jumped.replayed_steps <= BUDGET + 1
    assert jumped.jump_evaluations <= MAX_SAMPLES
    np.testing.assert_array_equal(jumped.lrs, full.lrs[: BUDGET + 1])
    assert jumped.tail.steps[0] == BUDGET
    assert jumped.tail.steps[-1] == LONG
    steps = np.arange(LONG + 1)
    knots = np.interp(steps, jumped.tail.steps, jumped.tail.lrs)[BUDGET:]
    # Within the sampling's tolerance (0 for the stairs of a scheduler stepped every few steps or epochs), and
    # rounding: a closed form against the step-by-step update.
    assert np.abs(knots - full.lrs[BUDGET:]).max() <= jumped.tail.tolerance + 1e-12 * full.lrs.max()
    # So the LRs a run following the plan uses never look changed by hand.
    assert all(jumped.disagreement(int(t), float(full.lrs[t])) is None for t in steps[::7])


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_a_scheduler_only_a_replay_of_every_step_reveals_is_unknown_past_the_budget(name):
    assert replay_schedule(_trainer(*STATEFUL[name]), 0, LONG, budget=LONG).known  # within the budget: as before
    jumped = replay_schedule(_trainer(*STATEFUL[name]), 0, LONG, budget=BUDGET)
    assert not jumped.known
    assert f"the LR past step {BUDGET} is unknown" in jumped.reason
    assert "replaying every step" in jumped.reason


def test_several_schedulers_on_one_optimizer_are_unknown_past_the_budget():
    trainer = _trainer(lambda o: S.StepLR(o, 1000, 0.5), "step", 1, extra=lambda o: S.ExponentialLR(o, 0.9999))
    jumped = replay_schedule(trainer, 0, LONG, budget=BUDGET)
    assert not jumped.known
    assert "several schedulers (StepLR, ExponentialLR)" in jumped.reason


def test_a_hundred_million_step_run_starts_after_a_bounded_replay(quiet_trainer_kwargs, monkeypatch):
    steps_taken = [0]
    step = S.LRScheduler.step

    def counting_step(self, *args, **kwargs):
        steps_taken[0] += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(S.LRScheduler, "step", counting_step)
    horizon = 10**8
    cosine = lambda o: S.LambdaLR(o, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / horizon, 1.0))))
    capture = LearningRateCapture()
    trainer = pl.Trainer(max_steps=horizon, max_epochs=1, callbacks=[capture], **quiet_trainer_kwargs)
    trainer.fit(Scheduled(cosine, "step"), loader(n=64))  # one epoch of 8 steps, planned for 1e8
    # The replay's steps, the real run's 8 and its scheduler's first: bounded whatever the run length.
    assert capture.planned.replayed_steps <= REPLAY_BUDGET + 1
    assert steps_taken[0] <= REPLAY_BUDGET + 1 + 8 + 1
    assert capture.planned.jump_evaluations <= MAX_SAMPLES
    planned = capture.schedule()
    assert not planned.dense
    assert len(planned) == horizon + 1
    assert len(planned.knots()[0]) <= REPLAY_BUDGET + 1 + MAX_SAMPLES
    for t in (0, 7, REPLAY_BUDGET, 12_345_678, horizon // 2, horizon - 1):
        assert planned.lr(t) == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * t / horizon)), rel=1e-6, abs=1e-12)
    assert planned.drop_ahead(horizon // 2)
    np.testing.assert_array_equal(capture.history.series("lr").values, [planned.lr(t) for t in range(8)])


def test_a_long_plan_joins_the_recorded_past_in_knots():
    capture = LearningRateCapture()
    capture.history.extend("lr", list(range(10)), [0.01 * (i + 1) for i in range(10)])  # a warmup, then resumed
    capture.horizon = 10**9
    tail = SampledKnots(np.array([20, 10**9]), np.array([0.1, 0.0]), 0.0, 2)
    capture.planned = PlannedSchedule(10, np.full(11, 0.1), tail=tail)
    schedule = capture.schedule()
    assert not schedule.dense
    assert len(schedule) == 10**9 + 1
    assert (schedule.lr(4), schedule.lr(15), schedule.lr(10**9)) == (0.05, 0.1, 0.0)
    assert schedule.lr(20 + (10**9 - 20) // 2) == pytest.approx(0.05)
    assert schedule.rose_between(0, 9)
    assert not schedule.rose_between(9, 10**9)
    assert schedule.peak_step == 9


# -- LRs changed outside Lightning's scheduler stepping, and LRs that are no schedule ------------------------------


class HandStepped(TinyRegression):
    """Steps a scheduler Lightning does not know of, by hand, as some training scripts do."""

    def __init__(self, where):
        super().__init__()
        self.where = where

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05)
        self.by_hand = S.StepLR(optimizer, step_size=3, gamma=0.5)
        return optimizer

    def training_step(self, batch, batch_idx):
        if self.where == "training_step":
            self.by_hand.step()
        return super().training_step(batch, batch_idx)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        if self.where == "optimizer_step":  # a warmup written by hand
            for group in optimizer.param_groups:
                group["lr"] = 0.05 * min(1.0, (self.trainer.global_step + 1) / 5)
        optimizer.step(closure=optimizer_closure)


@pytest.mark.parametrize("where", ["training_step", "optimizer_step"])
def test_an_lr_changed_by_hand_makes_the_schedule_unknown_with_one_warning(where, quiet_trainer_kwargs, monkeypatch):
    bundle = Curvecast(forecast_budget=None, forecast_every=4, background=False, tensorboard=False, alerts=False)
    trainer = pl.Trainer(max_steps=MAX_STEPS, callbacks=[bundle], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match="changed outside Lightning's scheduler stepping") as caught:
        trainer.fit(HandStepped(where), loader(n=64))
    assert sum("outside Lightning" in str(w.message) for w in caught) == 1
    capture = bundle.lr_capture
    assert capture.schedule() is None
    assert not capture.planned.known
    assert "stepped by hand" in capture.planned.reason
    assert bundle.last_report is not None
    assert not bundle.last_report.lr_schedule_known
    assert capture.history.num_points("lr") == MAX_STEPS  # the LRs used are still recorded


def test_an_lr_of_zero_throughout_is_no_schedule(quiet_trainer_kwargs, monkeypatch):
    capture = LearningRateCapture()
    with pytest.warns(CurvecastWarning, match="planned LR is 0 at every step"):
        pl.Trainer(max_steps=5, callbacks=[capture], **quiet_trainer_kwargs).fit(TinyRegression(lr=0.0), loader())
    assert capture.schedule() is None
    assert "0 at every step from 0 to 5" in capture.planned.reason


def test_a_scheduler_giving_no_finite_lr_is_no_schedule():
    trainer = _trainer(lambda o: S.LambdaLR(o, lambda s: 1.0 if s < 10 else float("nan")), "step", 1)
    planned = replay_schedule(trainer, 0, 100)
    assert not planned.known
    assert "the planned LR of step 10 is nan" in planned.reason
