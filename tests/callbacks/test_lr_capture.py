import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.optim import lr_scheduler as S

from curvecast.callbacks import LearningRateCapture
from tiny_models import TinyRegression, loader

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
    used = capture.history.series("lr")
    np.testing.assert_array_equal(used.steps, np.arange(MAX_STEPS))
    np.testing.assert_allclose(planned.lrs[:MAX_STEPS], used.values, rtol=1e-9, atol=1e-15)
    # A fresh run is replayed from its first step.
    assert capture.planned.start == 0


def test_replay_from_a_resumed_run_joins_the_recorded_past(tmp_path, quiet_trainer_kwargs):
    from pytorch_lightning.callbacks import ModelCheckpoint

    kwargs = {**quiet_trainer_kwargs, "enable_checkpointing": True}
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1)
    first = LearningRateCapture()
    pl.Trainer(max_steps=10, callbacks=[first, checkpoint], **kwargs).fit(
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


def test_reduce_on_plateau_cannot_be_replayed_and_says_so(quiet_trainer_kwargs):
    capture = LearningRateCapture()
    trainer = pl.Trainer(max_steps=5, callbacks=[capture], limit_val_batches=1, **quiet_trainer_kwargs)
    with pytest.warns(UserWarning, match="ReduceLROnPlateau depends on future metrics"):
        trainer.fit(TinyRegression(scheduler="plateau"), loader(), loader(n=8))
    assert capture.schedule() is None
    assert "ReduceLROnPlateau" in capture.planned.reason
    # The LRs actually used are still recorded.
    assert capture.history.num_points("lr") == 5


def test_an_lr_drop_ahead_is_seen_until_it_has_happened():
    capture = LearningRateCapture()
    capture.horizon = 10
    from curvecast.callbacks.schedule_replay import PlannedSchedule

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
