"""A divergence stop takes effect at the step it is confirmed, not at the next logging step."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from curvecast import Curvecast
from curvecast.integrations import StopReason

DIVERGES_AT = 200


class Diverging(pl.LightningModule):
    """A falling loss that climbs steadily from step 200 on (the weights take part, so gradients flow)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        t = self.global_step
        value = 2.0 + 3.0 * (1 + t / 10) ** -0.7 + 0.02 * math.sin(t) + 0.05 * max(t - DIVERGES_AT, 0)
        return value + 0.0 * self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(torch.randn(2000, 2), batch_size=2)


def test_a_confirmed_divergence_stops_the_run_at_its_step(quiet_trainer_kwargs):
    bundle = Curvecast(forecast_every=100, background=False, forecast_budget=None, early_stopping=True)
    trainer = pl.Trainer(max_steps=600, log_every_n_steps=50, callbacks=[bundle], **quiet_trainer_kwargs)
    trainer.fit(Diverging())
    assert bundle.stop is not None
    assert bundle.stop.reason is StopReason.DIVERGENCE
    assert DIVERGES_AT < bundle.stop.step < DIVERGES_AT + 100
    # The run stops at the step the divergence was found (as the losses reached the host, at most 8 steps after the
    # step that confirmed it on one CPU), not at the next logging step, nor at the next forecast.
    assert trainer.global_step == bundle.stop.step + 1
