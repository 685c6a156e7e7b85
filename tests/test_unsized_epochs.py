"""``max_epochs`` of a training loader with no length (a streaming dataset): the run's length is unknown at the start
and known once an epoch has ended. Such a run was told "no forecasts in this run" and got none; it now forecasts from
the end of its first epoch, to that epoch's steps times ``max_epochs``, and is told so at info."""

from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from tiny_models import TinyRegression


class Stream(IterableDataset):
    """``n`` examples of the tiny regression, streamed (no ``__len__``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        draw = torch.Generator().manual_seed(0)
        for _ in range(self.n):
            x = torch.randn(4, generator=draw)
            yield x, x @ torch.arange(1.0, 5.0) + 0.1 * torch.randn((), generator=draw)


def test_epochs_of_a_stream_are_forecast_once_the_first_has_ended(quiet_trainer_kwargs, caplog):
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=10, forecast_budget=None)
    kwargs = {**quiet_trainer_kwargs, "max_steps": -1, "max_epochs": 4}
    trainer = pl.Trainer(callbacks=[bundle], **kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings():
        warnings.simplefilter("error", CurvecastWarning)  # nothing to fix: no warning
        trainer.fit(TinyRegression(), DataLoader(Stream(8 * 25), batch_size=8))
    assert trainer.global_step == 100
    assert bundle.lr_capture.horizon == 100  # 25 steps an epoch, 4 epochs
    said = [r.getMessage() for r in caplog.records]
    assert any("forecasts start once an epoch has ended" in m for m in said)
    assert any("the first epoch took 25 steps: forecasting to step 100" in m for m in said)
    forecast = [r for r in bundle.reports if r.forecast is not None and r.forecast.ok]
    assert forecast
    assert min(r.step for r in forecast) >= 25  # none before the length was known
    assert all(r.horizon == 100 for r in forecast)
