"""A tiny LightningModule whose training loss follows a known curve, and a Trainer for it."""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset


class CurveModule(LightningModule):
    """Loss at optimizer step t: ``floor + scale * (t + 1) ** -power`` times 1% seeded noise, plus injected events.

    The loss depends on one scalar parameter only through ``0 * w`` so that the optimizer has something to step; the
    value itself is the known curve. Module-level and picklable, for ``ddp_spawn``.
    """

    def __init__(
        self,
        steps: int,
        floor: float = 2.0,
        scale: float = 3.0,
        power: float = 0.5,
        noise: float = 0.01,
        spike_at: int | None = None,
        nan_from: int | None = None,
        lr: float = 0.1,
        seed: int = 0,
        items: int | None = None,
        lr_drop_at: int | None = None,
    ) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.steps = steps
        self.floor, self.scale, self.power = floor, scale, power
        self.noise = np.random.default_rng(seed).normal(0.0, noise, steps + 8).tolist()
        self.spike_at = spike_at
        self.nan_from = nan_from
        self.lr = lr
        self.items = items or steps
        self.lr_drop_at = lr_drop_at

    def value(self, t: int) -> float:
        if self.nan_from is not None and t >= self.nan_from:
            return math.nan
        v = (self.floor + self.scale * (t + 1) ** -self.power) * math.exp(self.noise[t % len(self.noise)])
        return v * 10.0 if t == self.spike_at else v

    def training_step(self, batch, batch_idx):
        return self.w * 0.0 + self.value(int(self.global_step))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        if self.lr_drop_at is None:
            return optimizer
        drop = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[self.lr_drop_at], gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": drop, "interval": "step"}}

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(self.items, 1)), batch_size=1)


def tiny_trainer(tmp_path, callbacks, max_steps: int, **kwargs) -> Trainer:
    options = {
        "max_steps": max_steps,
        "max_epochs": 1,
        "accelerator": "cpu",
        "devices": 1,
        "logger": TensorBoardLogger(str(tmp_path), name="tb"),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": 1,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(tmp_path),
    }
    options.update(kwargs)
    return Trainer(callbacks=callbacks, **options)


def alert_texts(accumulator) -> list[str]:
    """The markdown of every alert in a run (an EventAccumulator already reloaded)."""
    from tensorboard.util import tensor_util

    events = accumulator.Tensors("curvecast/alerts/text_summary")
    return [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in events]
