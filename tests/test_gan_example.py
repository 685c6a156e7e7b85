"""Lightning's basic GAN (``examples/pytorch/domain_templates/generative_adversarial_net.py``) under curvecast, as a
user runs it: ``Curvecast()`` or ``Curvecast(early_stopping=True)`` with nothing else said.

The module is the example's (its generator and discriminator, manual optimization of two Adams at lr 2e-4, betas
(0.5, 0.999), its BCE losses, ``g_loss`` and ``d_loss`` logged, nothing returned), on 28x28 Gaussian blobs drawn in
torch (normalised as MNIST) in place of MNIST, which this machine cannot download. Every such run was told two
warnings: ``GradientNoiseScale measures only runs with one optimizer; B_simple is off`` for a measure no one asked
for, and "training_step returned no loss (with manual optimization, return it) ... return the loss": a GAN has no one
loss to return.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
nn, F = torch.nn, torch.nn.functional

from run_helpers import AnomalyRecorder  # noqa: E402 - needs torch, checked above

IMG = (1, 28, 28)


def blobs(n: int = 2000, seed: int = 0) -> torch.utils.data.TensorDataset:
    """``n`` 28x28 images of one Gaussian blob each (centre and width drawn at random), normalised as MNIST is."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centre = 8 + 12 * torch.rand(n, 2, 1, 1, generator=g)
    width = 2.5 + 3 * torch.rand(n, 1, 1, generator=g)
    img = torch.exp(-((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) / (2 * width**2))
    return torch.utils.data.TensorDataset((img[:, None] - 0.1307) / 0.3081, torch.zeros(n, dtype=torch.long))


def _generator(latent_dim: int) -> nn.Module:
    def block(n_in: int, n_out: int, normalize: bool = True) -> list[nn.Module]:
        norm = [nn.BatchNorm1d(n_out, 0.8)] if normalize else []
        return [nn.Linear(n_in, n_out), *norm, nn.LeakyReLU(0.2, inplace=True)]

    return nn.Sequential(*block(latent_dim, 128, normalize=False), *block(128, 256), *block(256, 512),
                         *block(512, 1024), nn.Linear(1024, int(np.prod(IMG))), nn.Tanh())  # fmt: skip


class GAN(L.LightningModule):
    """The example's module and hyperparameters (batch 32, as its MNIST datamodule)."""

    def __init__(self, lr: float = 0.0002, b1: float = 0.5, b2: float = 0.999, latent_dim: int = 100) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = _generator(latent_dim)
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(IMG)), 512), nn.LeakyReLU(0.2, True),
                                           nn.Linear(512, 256), nn.LeakyReLU(0.2, True), nn.Linear(256, 1))  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).view(z.size(0), *IMG)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        imgs, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(imgs.shape[0], self.hparams.latent_dim).type_as(imgs)
        valid, fake = torch.ones(imgs.size(0), 1).type_as(imgs), torch.zeros(imgs.size(0), 1).type_as(imgs)
        self.toggle_optimizer(opt_g)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(self(z)), valid)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.toggle_optimizer(opt_d)
        real_loss = F.binary_cross_entropy_with_logits(self.discriminator(imgs), valid)
        fake_loss = F.binary_cross_entropy_with_logits(self.discriminator(self(z).detach()), fake)
        d_loss = (real_loss + fake_loss) / 2
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        hp = self.hparams
        return (torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=(hp.b1, hp.b2)),
                torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=(hp.b1, hp.b2)))  # fmt: skip

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(blobs(), batch_size=32, shuffle=True)


STEPS = 400  # global steps: two optimizer steps a batch, so 200 batches


def _fit(seed: int, quiet_trainer_kwargs: dict, **options) -> tuple:
    """The example fitted under ``Curvecast(**options)``: the bundle, the Trainer, the anomalies and the curvecast
    warnings told."""
    from curvecast import Curvecast
    from curvecast.failsafe import CurvecastWarning

    L.seed_everything(seed, verbose=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on shared cores, two threads' contention made these runs 4x slower
    recorder = AnomalyRecorder()
    bundle = Curvecast(background=False, tensorboard=False, actuators=[recorder], **options)
    trainer = L.Trainer(max_steps=STEPS, callbacks=[bundle], **quiet_trainer_kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer.fit(GAN())
        finally:
            torch.set_num_threads(threads)
    told = [str(w.message) for w in caught if issubclass(w.category, CurvecastWarning)]
    return bundle, trainer, recorder.anomalies, told


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "early_stopping"), [(0, False), (1, True), (2, True)])
def test_the_gan_example_is_told_one_warning_that_fits_a_gan(seed, early_stopping, quiet_trainer_kwargs) -> None:
    """No stop and no alarm; no warning of the noise scale no one asked for; the one warning (nothing to forecast)
    names the logged losses to forecast instead of telling a GAN to return "the" loss."""
    bundle, trainer, anomalies, told = _fit(seed, quiet_trainer_kwargs, early_stopping=early_stopping)
    assert trainer.global_step == STEPS
    assert not trainer.should_stop
    assert [a for a in anomalies if a.severity != "info"] == []
    assert len(told) == 1, told
    assert "no training loss to forecast" in told[0]
    assert "`d_loss`, `g_loss`" in told[0]
    assert "return" not in told[0].split("no training loss")[1]  # no "return the loss": a GAN has none
    assert not bundle.gradient_noise.b_simple  # off, as said at info
    assert len(bundle.history.series("grad_norm").values) > 0  # the generator's gradient norm is still measured


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_gan_example_watched_by_its_generator_loss_runs_to_the_end(seed, quiet_trainer_kwargs) -> None:
    """The next thing a user tries: ``monitor="g_loss"``. The discriminator wins on these easy images and g_loss
    climbs from about 0.7 to 2 and more; the climbs are notes, the run is not stopped and nothing is warned."""
    bundle, trainer, anomalies, told = _fit(seed, quiet_trainer_kwargs, monitor="g_loss", early_stopping=True)
    assert trainer.global_step == STEPS
    assert not trainer.should_stop
    assert bundle.early_stopping.stop_request is None
    assert [a for a in anomalies if a.severity != "info"] == []
    assert told == []
    # A one-player note carries no advice for an unstable run: a 1.05x spike of g_loss, a note of the detector's own,
    # told "lower the LR or tighten gradient clipping" (seeds 0 and 1, step 20).
    assert [a.message for a in anomalies if "lower the LR" in a.message] == []
    assert any("several optimizers" in a.message for a in anomalies if a.kind == "spike")
    g_loss = bundle.history.series("g_loss").values
    assert np.median(g_loss[-50:]) > 2 * np.median(g_loss[:20])  # it did climb


def test_a_noise_scale_asked_for_in_a_gan_is_still_warned_off(quiet_trainer_kwargs) -> None:
    """A GradientNoiseScale the user set up, in a run with several optimizers, is warned that B_simple is off."""
    from curvecast.callbacks import GradientNoiseScale
    from curvecast.failsafe import CurvecastWarning

    trainer = L.Trainer(max_steps=4, callbacks=[GradientNoiseScale()], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match="only runs with one optimizer; B_simple is off"):
        trainer.fit(GAN())
