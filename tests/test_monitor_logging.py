"""A monitor logged late or on some steps only: waited for, and recorded only at the steps it was logged."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from tiny_models import TinyRegression, loader

STEPS = 120
EVERY = 6  # the sparse metric is logged at one step in six
FIRST_VAL = 60  # the late metric is logged from this step on


class SparseAndLateMetrics(TinyRegression):
    """Logs `train_acc` at one step in six (rising), and `val_acc` only from step 60 on, at each validation."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.global_step % EVERY == 0:
            self.log("train_acc", 0.5 + self.global_step / 1000)
        return loss

    def validation_step(self, batch, batch_idx):
        if self.global_step >= FIRST_VAL:
            self.log("val_acc", 0.5 + self.global_step / 1000)

    def val_dataloader(self):
        return loader(n=8)


def _fit(monitor: str, quiet_trainer_kwargs) -> Curvecast:
    bundle = Curvecast(monitor, forecast_every=20, background=False, forecast_budget=None)
    trainer = pl.Trainer(max_steps=STEPS, val_check_interval=20, callbacks=[bundle], **quiet_trainer_kwargs)
    trainer.fit(SparseAndLateMetrics(), loader(n=8 * STEPS))
    assert trainer.global_step == STEPS
    return bundle


def test_a_metric_logged_on_some_steps_is_recorded_at_those_steps_alone(quiet_trainer_kwargs):
    bundle = _fit("train_acc", quiet_trainer_kwargs)
    series = bundle.history.series("train_acc")
    np.testing.assert_array_equal(series.steps, np.arange(0, STEPS, EVERY))
    np.testing.assert_allclose(series.values, 0.5 + np.arange(0, STEPS, EVERY) / 1000, rtol=1e-6)
    assert bundle.last_report.forecast.ok


class EpochOnlyLoss(TinyRegression):
    """Logs its training loss as the epoch's mean alone (``on_step=False, on_epoch=True``), under the name given."""

    def __init__(self, step_too: bool = False) -> None:
        super().__init__()
        self.step_too = step_too
        self.epoch_losses: list[list[float]] = []

    def on_train_epoch_start(self):
        self.epoch_losses.append([])

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.epoch_losses[-1].append(float(loss))
        self.log("train_loss", loss, on_step=self.step_too, on_epoch=True)
        return loss


@pytest.mark.parametrize("monitor", ["train_loss", "train_loss_epoch"])
def test_an_epoch_only_metric_is_recorded_at_each_epochs_last_step_the_last_epoch_too(quiet_trainer_kwargs, monitor):
    # Read at the next step it lay one step late (10, 20, ...), and the last epoch's was never read: no forecast.
    module = EpochOnlyLoss(step_too=monitor == "train_loss_epoch")
    bundle = Curvecast(monitor, forecast_every=5, background=False, forecast_budget=None)
    trainer = pl.Trainer(max_epochs=5, limit_train_batches=10, callbacks=[bundle], **quiet_trainer_kwargs)
    trainer.fit(module, loader(n=80))
    series = bundle.history.series(monitor)
    np.testing.assert_array_equal(series.steps, [9, 19, 29, 39, 49])
    np.testing.assert_allclose(series.values, [np.mean(e) for e in module.epoch_losses], rtol=1e-5)


def test_a_metric_logged_every_step_and_every_epoch_keeps_its_steps_values(quiet_trainer_kwargs):
    module = EpochOnlyLoss(step_too=True)
    bundle = Curvecast("train_loss", forecast_every=5, background=False, forecast_budget=None)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=10, callbacks=[bundle], **quiet_trainer_kwargs)
    trainer.fit(module, loader(n=80))
    series = bundle.history.series("train_loss")
    np.testing.assert_array_equal(series.steps, np.arange(20))
    np.testing.assert_allclose(series.values, [v for e in module.epoch_losses for v in e], rtol=1e-5)


def test_a_monitor_logged_from_a_later_step_is_waited_for_and_said_once(quiet_trainer_kwargs, caplog):
    with caplog.at_level(logging.INFO, logger="curvecast"):
        bundle = _fit("val_acc", quiet_trainer_kwargs)  # no error at the first validations, which lack it
    said = [r.getMessage() for r in caplog.records if "has not been logged yet" in r.getMessage()]
    assert len(said) == 1
    assert "`val_acc` has not been logged yet" in said[0]
    series = bundle.history.series("val_acc")
    np.testing.assert_array_equal(series.steps, [60, 80, 100, 120])  # only the validations that logged it
    assert bundle.last_report is not None
    assert bundle.last_report.monitor == "val_acc"


def test_a_monitor_logged_late_gives_no_warning(quiet_trainer_kwargs, recwarn):
    _fit("val_acc", quiet_trainer_kwargs)
    assert not [w for w in recwarn if "never logged" in str(w.message)]


@pytest.mark.parametrize("monitor", ["val_f1"])
def test_a_monitor_never_logged_is_one_warning_at_the_end(quiet_trainer_kwargs, monitor):
    with pytest.warns(CurvecastWarning, match=rf"monitor='{monitor}'.*never logged in this run.*`train_acc`"):
        bundle = _fit(monitor, quiet_trainer_kwargs)
    assert bundle.last_report is None
