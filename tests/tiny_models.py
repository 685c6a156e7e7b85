"""Tiny LightningModules for the callback tests, in both Lightning flavours."""

from __future__ import annotations

import lightning.pytorch as L
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


def regression_data(n: int = 64, features: int = 4, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    y = x @ torch.arange(1.0, features + 1) + 0.1 * torch.randn(n, generator=generator)
    return TensorDataset(x, y)


def loader(n: int = 64, batch_size: int = 8, seed: int = 0) -> DataLoader:
    return DataLoader(regression_data(n, seed=seed), batch_size=batch_size)


class _TinyRegression:
    """Linear regression that remembers the raw loss of every micro-batch it trained on (a mixin for both flavours)."""

    def __init__(self, lr: float = 0.05, scheduler: str | None = None, manual: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.lr = lr
        self.scheduler = scheduler
        self.automatic_optimization = not manual
        self.raw_losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.raw_losses.append(loss.item())
        if not self.automatic_optimization:
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        if self.scheduler is None:
            return optimizer
        if self.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
        else:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class TinyRegression(_TinyRegression, pl.LightningModule):
    pass


class TinyRegressionL(_TinyRegression, L.LightningModule):
    pass


FLAVOURS = {"pytorch_lightning": (pl.Trainer, TinyRegression), "lightning.pytorch": (L.Trainer, TinyRegressionL)}


class CurveModule(pl.LightningModule):
    """A module whose training loss follows a given curve exactly, step by step (to test what reacts to it)."""

    def __init__(self, curve) -> None:
        super().__init__()
        self.curve = [float(v) for v in curve]
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        value = self.curve[min(self.global_step, len(self.curve) - 1)]
        # The weight keeps the loss differentiable; its gradient is zero, so nothing else changes.
        return (self.weight * 0).sum() + torch.tensor(value)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def curve_loader(steps: int) -> DataLoader:
    return DataLoader(TensorDataset(torch.zeros(steps, 1)), batch_size=1)


class LeaveTogether(pl.Callback):
    """Under ``ddp_spawn``, closes the gloo process group on every rank at one agreed point.

    Otherwise each worker closes it from an ``atexit`` hook while the other may still be busy (rank 0 saves the weights
    it hands back), and on a loaded machine gloo can then abort a worker with SIGABRT after a run that passed.
    """

    def teardown(self, trainer, pl_module, stage):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            trainer.strategy.barrier("curvecast-tests-leave-together")
            torch.distributed.destroy_process_group()
