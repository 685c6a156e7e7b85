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


class GrowingStream(Stream):
    """A stream that yields 80 more examples every epoch (10 more batches of 8): 25, 35, 45 batches."""

    def __iter__(self):
        yield from Stream(self.n).__iter__()
        self.n += 80


def test_the_length_is_estimated_again_at_each_epochs_end(quiet_trainer_kwargs, caplog):
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=5, forecast_budget=None)
    kwargs = {**quiet_trainer_kwargs, "max_steps": -1, "max_epochs": 3}
    trainer = pl.Trainer(callbacks=[bundle], **kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(TinyRegression(), DataLoader(GrowingStream(8 * 25), batch_size=8))
    assert trainer.global_step == 25 + 35 + 45
    said = [r.getMessage() for r in caplog.records]
    assert any("the first epoch took 25 steps: forecasting to step 75" in m for m in said)
    assert any("2 epochs took 60 steps: forecasting to step 90" in m for m in said)
    horizons = {r.step: r.horizon for r in bundle.reports if r.forecast is not None}
    assert {h for s, h in horizons.items() if 25 <= s < 60} == {75}
    assert {h for s, h in horizons.items() if 60 <= s < 90} == {90}
    # Past the estimate, in a longer epoch, no report names a horizon the run has passed.
    assert all(r.horizon is None or r.horizon > r.step for r in bundle.reports if r.step < 104)
