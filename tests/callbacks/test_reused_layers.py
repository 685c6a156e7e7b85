"""A layer run twice in a forward pass (a siamese encoder on two views, an RNN cell, tied embeddings) cannot be measured
per example. ``Curvecast()`` measures the noise scale by default, asked for by no one: a contrastive model got one
``CurvecastWarning`` per reused layer in every run, noise its owner cannot act on. It is now one info line; a
``GradientNoiseScale`` the user set up is still warned."""

from __future__ import annotations

import logging
import warnings

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from curvecast import Curvecast
from curvecast.callbacks import GradientNoiseScale
from curvecast.failsafe import CurvecastWarning


class Siamese(L.LightningModule):
    """InfoNCE between two noisy views of each example, both through the one encoder (SimCLR's picture)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        a = F.normalize(self.encoder(x + 0.1 * torch.randn_like(x)), dim=-1)
        b = F.normalize(self.encoder(x + 0.1 * torch.randn_like(x)), dim=-1)
        return F.cross_entropy(a @ b.T / 0.1, torch.arange(len(x)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(64, 8, generator=torch.Generator().manual_seed(0))), batch_size=16)


def test_curvecast_tells_a_reused_layer_once_at_info(quiet_trainer_kwargs, caplog) -> None:
    trainer = L.Trainer(max_steps=8, callbacks=[Curvecast(tensorboard=False)], **quiet_trainer_kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(Siamese(), _loader())
    assert not [w for w in record if issubclass(w.category, CurvecastWarning)]
    told = [r for r in caplog.records if "more than once per forward pass" in r.getMessage()]
    assert len(told) == 1
    assert told[0].levelno == logging.INFO


def test_a_noise_scale_set_up_by_the_user_is_warned_of_a_reused_layer(quiet_trainer_kwargs) -> None:
    trainer = L.Trainer(max_steps=8, callbacks=[GradientNoiseScale(source="per_example")], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match="runs more than once per forward pass"):
        trainer.fit(Siamese(), _loader())
