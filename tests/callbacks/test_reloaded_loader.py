"""A training loader reloaded every epoch with another length (``reload_dataloaders_every_n_epochs``, a curriculum that
grows its data): Lightning's estimate of the run's steps reads the first loader's length, so the run was forecast to
step 32 of its 80 and, past it, not at all. The end is planned again at each epoch whose loader has another length:
the steps so far and the epochs to come, each as long as this one."""

from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from tiny_models import TinyRegression, regression_data

EPOCHS, BATCH = 4, 8


class GrowingData(TinyRegression):
    """Its training data grows by 64 examples an epoch: 8, 16, 24 and 32 batches of 8 (80 steps in all)."""

    def train_dataloader(self):
        return DataLoader(regression_data(64 * (self.current_epoch + 1)), batch_size=BATCH)


def test_a_loader_reloaded_longer_moves_the_end(quiet_trainer_kwargs, caplog):
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=5, forecast_budget=None)
    kwargs = {**quiet_trainer_kwargs, "max_steps": -1, "max_epochs": EPOCHS, "reload_dataloaders_every_n_epochs": 1}
    trainer = pl.Trainer(callbacks=[bundle], **kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings():
        warnings.simplefilter("error", CurvecastWarning)
        trainer.fit(GrowingData())
    assert trainer.global_step == 80
    said = [r.getMessage() for r in caplog.records]
    # Epoch 1 starts at step 8 with 16 steps an epoch: 8 + 3 * 16; epoch 2 at 24 with 24: 24 + 2 * 24; epoch 3: 80.
    for per_epoch, end in ((16, 56), (24, 72), (32, 80)):
        assert any(f"an epoch now takes {per_epoch} optimizer steps: forecasting to step {end}" in m for m in said)
    forecast = [r for r in bundle.reports if r.forecast is not None and r.forecast.ok]
    assert max(r.step for r in forecast) >= 70  # forecasts go on past the first loader's estimate (32)
    assert all(r.step < r.horizon for r in forecast)
    for r in forecast:  # each to the end planned at its epoch's start
        assert r.horizon == (32 if r.step < 8 else 56 if r.step < 24 else 72 if r.step < 48 else 80)
    assert bundle.reports[-1].horizon == 80
    assert bundle.reports[-1].ended_by is None


def test_a_loader_of_the_same_length_changes_nothing(quiet_trainer_kwargs, caplog):
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=5, forecast_budget=None)
    kwargs = {**quiet_trainer_kwargs, "max_steps": -1, "max_epochs": EPOCHS, "reload_dataloaders_every_n_epochs": 1}
    trainer = pl.Trainer(callbacks=[bundle], **kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(TinyRegression(), DataLoader(regression_data(64), batch_size=BATCH))
    assert trainer.global_step == 32
    assert {r.horizon for r in bundle.reports} == {32}
    assert not any("an epoch now takes" in r.getMessage() for r in caplog.records)


def test_batches_accumulated_in_another_number_move_the_end(quiet_trainer_kwargs, caplog):
    """``GradientAccumulationScheduler``: one batch a step for two epochs, then four (8 steps an epoch, then 2)."""
    accumulate = pl.callbacks.GradientAccumulationScheduler(scheduling={0: 1, 2: 4})
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=5, forecast_budget=None)
    kwargs = {**quiet_trainer_kwargs, "max_steps": -1, "max_epochs": EPOCHS}
    trainer = pl.Trainer(callbacks=[bundle, accumulate], **kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(TinyRegression(), DataLoader(regression_data(64), batch_size=BATCH))
    assert trainer.global_step == 20  # 8 + 8 + 2 + 2, where Lightning estimated 32
    assert any("an epoch now takes 2 optimizer steps: forecasting to step 20" in r.getMessage() for r in caplog.records)
    assert bundle.reports[-1].horizon == 20
    assert all(r.horizon == 20 for r in bundle.reports if r.step >= 16)
