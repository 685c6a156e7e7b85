"""A module that steps several optimizers by hand (a GAN's generator and discriminator, an actor-critic agent): no
logged loss is the run's objective, so one player's loss rising as the other learns is no divergence of the run, and
a plateau of it no reason to decay the LR. A non-finite loss still stops it."""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch

from curvecast import Curvecast
from curvecast.callbacks import GradientNoiseScale
from curvecast.integrations import HyperparameterAdvisor
from curvecast.live.stability_watch import StabilityWatch

BATCHES = 300


def _discriminator_loss(seed: int = 0) -> list[float]:
    """A GAN's discriminator loss: it wins early (1.0 -> 0.3), then the generator catches up and the loss climbs back
    to about log 2, where it stays: a healthy run."""
    rng = np.random.default_rng(seed)
    curve = np.r_[np.geomspace(1.0, 0.3, 60), np.geomspace(0.3, 0.69, 60), np.full(BATCHES - 120, 0.69)]
    return (curve * np.exp(0.03 * rng.standard_normal(BATCHES))).tolist()


class TwoPlayers(pl.LightningModule):
    """Manual optimization of a generator and a discriminator (one parameter each), logging ``d_loss`` from a given
    curve; ``optimizers=1`` steps the discriminator alone, as a single-objective run would."""

    def __init__(self, d_loss: list[float], optimizers: int = 2, nan_at: int | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.g = torch.nn.Parameter(torch.zeros(()))
        self.d = torch.nn.Parameter(torch.zeros(()))
        self.d_loss, self.players, self.nan_at = d_loss, optimizers, nan_at

    def training_step(self, batch, batch_idx):
        value = math.nan if batch_idx == self.nan_at else self.d_loss[min(batch_idx, len(self.d_loss) - 1)]
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        d_loss = 0.0 * self.d + value
        opts[0].zero_grad()
        self.manual_backward(d_loss)
        opts[0].step()
        if self.players > 1:
            g_loss = 0.0 * self.g + 1.0
            opts[1].zero_grad()
            self.manual_backward(g_loss)
            opts[1].step()
        self.log("d_loss", d_loss.detach())
        return d_loss.detach()

    def configure_optimizers(self):
        d = torch.optim.SGD([self.d], lr=0.01)
        return [d, torch.optim.SGD([self.g], lr=0.01)] if self.players > 1 else d

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(BATCHES, 1), batch_size=1)


def _fit(module: TwoPlayers, quiet_trainer_kwargs: dict) -> tuple[Curvecast, HyperparameterAdvisor, pl.Trainer]:
    advisor = HyperparameterAdvisor()
    bundle = Curvecast(
        "d_loss", early_stopping=True, forecast_budget=None, background=False, advice=advisor, tensorboard=False
    )
    trainer = pl.Trainer(max_epochs=1, callbacks=[bundle], **quiet_trainer_kwargs)
    trainer.fit(module)
    return bundle, advisor, trainer


def _loud(bundle: Curvecast) -> list[tuple[str, str]]:
    return sorted({(a.kind, a.severity) for r in bundle.reports for a in r.anomalies if a.severity != "info"})


def test_a_discriminator_loss_climbing_back_to_log_2_is_no_divergence(quiet_trainer_kwargs):
    bundle, advisor, trainer = _fit(TwoPlayers(_discriminator_loss()), quiet_trainer_kwargs)
    assert bundle.stop is None
    assert not trainer.should_stop
    assert _loud(bundle) == []
    notes = [a for r in bundle.reports for a in r.anomalies if a.kind == "divergence"]
    assert notes  # the climb is still told, as a note saying why it is one
    assert all("several optimizers" in a.message for a in notes)
    assert [a.kind for a in advisor.advice] == []  # nor told to decay the LR at the plateau of log 2


def test_the_same_climb_of_a_single_objective_is_a_divergence(quiet_trainer_kwargs):
    """The control: the detectors do see this climb, where one optimizer minimises the loss."""
    bundle, _, _ = _fit(TwoPlayers(_discriminator_loss(), optimizers=1), quiet_trainer_kwargs)
    assert ("divergence", "warning") in _loud(bundle) or ("divergence", "critical") in _loud(bundle)


def test_a_nan_loss_still_stops_a_run_of_several_optimizers(quiet_trainer_kwargs):
    bundle, _, trainer = _fit(TwoPlayers(_discriminator_loss(), nan_at=150), quiet_trainer_kwargs)
    assert bundle.stop is not None
    assert bundle.stop.reason == "non_finite"
    assert trainer.should_stop


def test_a_score_the_run_is_watched_by_keeps_its_alarms():
    """An actor-critic agent watched by its return: the return is the run's objective, and its collapse is told
    aloud; the players' own losses beside it are notes."""
    watch = StabilityWatch("reward", "max", pair_grad_norm=False)
    watch.several_players()
    rng = np.random.default_rng(0)
    reward = np.r_[np.linspace(10.0, 200.0, 100), np.geomspace(200.0, 5.0, 60)]
    reward *= np.exp(0.02 * rng.standard_normal(160))
    loss = np.r_[np.geomspace(1.0, 0.1, 80), np.geomspace(0.1, 3.0, 80)]  # the critic's loss climbs too
    for step in range(160):
        watch.feed("loss", step, float(loss[step]))
        watch.feed("reward", step, float(reward[step]))
    found = watch.collect()
    assert any(a.series == "reward" and a.kind == "divergence" and a.severity != "info" for a in found)
    climbs = [a for a in found if a.series == "loss" and a.kind == "divergence"]
    assert climbs
    assert all(a.severity == "info" for a in climbs)


class CriticAndGenerator(pl.LightningModule):
    """A WGAN's shape: the critic (the second optimizer) steps every batch with gradients of norm 0.01, the generator
    (the first) every fifth with gradients of norm 1, its gradients left in place after its step as `zero_grad` leaves
    them until its next one."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.g = torch.nn.Parameter(torch.zeros(()))
        self.d = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        d_loss = 0.01 * self.d + 1.0
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        if batch_idx % 5 == 0:
            opt_g.zero_grad()
            self.manual_backward(1.0 * self.g)
            opt_g.step()
        return d_loss.detach()

    def configure_optimizers(self):
        return [torch.optim.SGD([self.g], lr=0.0), torch.optim.SGD([self.d], lr=0.0)]

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(BATCHES, 1), batch_size=1)


def test_the_gradient_norm_of_several_optimizers_is_the_first_ones_alone(quiet_trainer_kwargs):
    """A norm of every gradient mixed the players' (and the generator's left from its last step): a WGAN's critic at
    0.02 read with its generator's 1 made 30-45x gradient-norm "spikes" in every seed."""
    bundle = Curvecast(gradient_noise=GradientNoiseScale(norm_every_n_steps=1), tensorboard=False)
    pl.Trainer(max_steps=2 * BATCHES, callbacks=[bundle], **quiet_trainer_kwargs).fit(CriticAndGenerator())
    norms = bundle.history.series("grad_norm").values
    assert len(norms) >= BATCHES // 5 - 1  # the generator's steps
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
    assert not [a for r in bundle.reports for a in r.anomalies if a.series == "grad_norm"]
