"""On a nearly full disk curvecast writes nothing to TensorBoard, says so once, and the run keeps its own logs."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.integrations.tensorboard import MIN_FREE_BYTES
from run_helpers import read_events, tiny_trainer
from tiny_models import TinyRegression, loader

Usage = namedtuple("Usage", "total used free")


class LogsItsLoss(TinyRegression):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_loss", loss)
        return loss


def _fit(tmp_path, bundle: Curvecast) -> tuple[pl.Trainer, dict]:
    logger = TensorBoardLogger(tmp_path, name="run", version="v")
    trainer = tiny_trainer(tmp_path, [bundle], 60, logger=logger, log_every_n_steps=5)
    trainer.fit(LogsItsLoss(), loader(n=480))
    return trainer, read_events(logger.log_dir).Tags()


def test_a_nearly_full_disk_gets_nothing_from_curvecast(tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(*real(path)[:2], MIN_FREE_BYTES - 1))
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None, target=0.01)
    with pytest.warns(CurvecastWarning, match=r"curvecast writes nothing to TensorBoard while it has less than"):
        trainer, tags = _fit(tmp_path, bundle)
    assert trainer.global_step == 60
    assert "train_loss" in tags["scalars"]  # the run's own logs are there
    assert not [t for t in tags["scalars"] + tags["tensors"] if t.startswith("curvecast")]
    assert bundle.last_report is not None  # forecasts went on; only their writing was held


def test_curvecast_writes_again_once_the_disk_has_room(tmp_path, monkeypatch):
    real, calls = shutil.disk_usage, [0]

    def usage(path):
        calls[0] += 1  # room again from the third check on
        return Usage(*real(path)[:2], MIN_FREE_BYTES - 1 if calls[0] <= 2 else MIN_FREE_BYTES)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None)
    with pytest.warns(CurvecastWarning, match="curvecast writes nothing to TensorBoard"):
        _, tags = _fit(tmp_path, bundle)
    assert "curvecast/forecast/final" in tags["scalars"]
    assert "curvecast/loss" in tags["scalars"]
