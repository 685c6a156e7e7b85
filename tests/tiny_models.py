"""Tiny LightningModules for the tests: a linear regression in both Lightning flavours, a module whose loss follows a
known curve, and a VAE whose KL weight warms up."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning.pytorch as L
import numpy as np
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


class LogsItsLoss(TinyRegression):
    """A TinyRegression that logs its training loss as ``train_loss`` (what a user's module logs)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_loss", loss)
        return loss


class StopsAt(pl.Callback):
    """Sets ``trainer.should_stop`` once ``step`` steps are taken, as a user's callback or module may (or as a
    ``max_time`` would end a run that has no step or epoch limit, on a count)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class LogsValLoss(TinyRegression):
    """Logs its validation loss as `val_loss` (a validation loader of its own)."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", (self.layer(x) - y).pow(2).mean())

    def val_dataloader(self):
        return loader(n=16)


FLAVOURS = {"pytorch_lightning": (pl.Trainer, TinyRegression), "lightning.pytorch": (L.Trainer, TinyRegressionL)}


class CurveModule(pl.LightningModule):
    """A module whose training loss at optimizer step t is known in advance (to test what reacts to it).

    The loss is ``curve[t]`` when a curve is given (its last value past its end); otherwise the power law
    ``floor + scale * (t + 1) ** -power`` times ``exp`` of seeded normal noise of standard deviation ``noise``.
    ``spike_at`` makes one step's loss ten times higher and ``nan_from`` every loss from that step on NaN. The loss
    depends on one parameter only through ``0 * w``, so that the optimizer has something to step and nothing changes;
    ``lr_drop_at`` adds a schedule, stepped every step, that cuts the LR tenfold there. An epoch is ``items`` batches
    (``steps``, or the curve's length, by default). Module-level and picklable, for ``ddp_spawn``.
    """

    def __init__(
        self,
        steps: int | None = None,
        *,
        curve: Sequence[float] | None = None,
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
        if (steps is None) == (curve is None):
            raise ValueError(f"Expected exactly one of `steps` and `curve`, but got steps={steps} and curve={curve}")
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.curve = None if curve is None else [float(v) for v in curve]
        self.steps = len(self.curve) if steps is None else steps
        self.floor, self.scale, self.power = floor, scale, power
        self.noise = np.random.default_rng(seed).normal(0.0, noise, self.steps + 8).tolist()
        self.spike_at = spike_at
        self.nan_from = nan_from
        self.lr = lr
        self.items = items or self.steps
        self.lr_drop_at = lr_drop_at

    def value(self, t: int) -> float:
        if self.nan_from is not None and t >= self.nan_from:
            return math.nan
        if self.curve is not None:
            v = self.curve[min(t, len(self.curve) - 1)]
        else:
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


def blobs(n: int = 512, features: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` points about 6 centres in ``features`` dimensions (spread 2, noise 0.3)."""
    generator = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(6, features, generator=generator)
    picked = torch.randint(0, 6, (n,), generator=generator)
    return centres[picked] + 0.3 * torch.randn(n, features, generator=generator)


class TinyVAE(pl.LightningModule):
    """A VAE on blobs (16 -> 8 latent dims, Adam 1e-2, batch 64) trained on ``recon + beta * kl`` with ``beta`` warming
    up linearly from 0 to 1 over ``warmup`` steps: its loss falls to about 5.4 by step 45 and climbs back to about 9 as
    the KL term is weighted in, the model healthy throughout. It logs ``beta`` under each name of ``beta_names``, and
    with ``components`` the terms (``recon_loss``, ``kl``). ``lr_to`` sets the LR to that value at step ``hot_at``: a
    real blow-up."""

    def __init__(
        self,
        beta_names: Sequence[str] = ("beta",),
        components: bool = False,
        warmup: int = 200,
        lr_to: float | None = None,
        hot_at: int = 100,
    ) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 16))
        self.decoder = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 16))
        self.beta_names, self.components, self.warmup = tuple(beta_names), components, warmup
        self.lr_to, self.hot_at = lr_to, hot_at

    def training_step(self, batch, batch_idx):
        if self.lr_to is not None and self.global_step == self.hot_at:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = self.lr_to
        (x,) = batch
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = ((self.decoder(z) - x) ** 2).sum(-1).mean()
        kl = (-0.5 * (1.0 + logvar - mu**2 - logvar.exp()).sum(-1)).mean()
        beta = min(1.0, self.global_step / self.warmup)
        for name in self.beta_names:
            self.log(name, beta)
        if self.components:
            self.log("recon_loss", recon)
            self.log("kl", kl)
        loss = recon + beta * kl
        self.log("train_loss", loss)  # for a CSVLogger's log of the run
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        return DataLoader(TensorDataset(blobs()), batch_size=64, shuffle=True)


class EitherFlavourCallback(pl.Callback, L.Callback):
    """A test's own callback that the Trainers of both Lightning flavours take (as they take curvecast's)."""


class LeaveTogether(pl.Callback):
    """Under ``ddp_spawn``, closes the gloo process group on every rank at one agreed point.

    Otherwise each worker closes it from an ``atexit`` hook while the other may still be busy (rank 0 saves the weights
    it hands back), and on a loaded machine gloo can then abort a worker with SIGABRT after a run that passed.
    """

    def teardown(self, trainer, pl_module, stage):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            trainer.strategy.barrier("curvecast-tests-leave-together")
            torch.distributed.destroy_process_group()
