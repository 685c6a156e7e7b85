"""A loss that steps up at an epoch's start by design (a curriculum's harder examples, mixup switched on) is warned of,
never stopped as a divergence; a loss that climbs on from such a step still is."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from curvecast import Curvecast
from tests.run_helpers import tiny_trainer
from tests.tiny_models import CurveModule


def _blobs(n: int, seed: int, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    centres = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)) * 1.5
    draw = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=draw)
    return centres[labels] + spread * torch.randn(n, 16, generator=draw), labels


class Curriculum(L.LightningModule):
    """An MLP on well separated blobs (32 batches an epoch) whose harder, overlapping examples join at epoch 10: the
    loss steps from about 0.003 to 0.3 at step 320, then falls to about 0.09."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))

    def train_dataloader(self) -> DataLoader:
        x, y = _blobs(1024, self.seed, spread=0.5)
        if self.current_epoch >= 10:
            hard_x, hard_y = _blobs(1024, self.seed + 100, spread=2.5)
            x, y = torch.cat([x, hard_x]), torch.cat([y, hard_y])
        return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("seed", [0, 2])  # both stopped as diverged before (steps 375 and 383)
def test_a_curriculum_stage_at_an_epoch_start_is_no_divergence_to_stop(seed: int, tmp_path: Path) -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    L.seed_everything(seed, verbose=False)
    bundle = Curvecast(early_stopping=True, background=False, tensorboard=False)
    trainer = tiny_trainer(tmp_path, [bundle], 420, logger=False, flavour=L, reload_dataloaders_every_n_epochs=1)
    trainer.fit(Curriculum(seed))
    assert trainer.global_step == 420
    assert bundle.early_stopping.stop_request is None
    assert [a for a in bundle.alerts.alerts if a.severity == "critical"] == []
    assert any(a.kind == "divergence" and a.step >= 320 for a in bundle.alerts.alerts)  # the step is still warned of


def _curve(climb_per_step: float) -> list[float]:
    """A loss falling to 0.5 by step 250, stepping to 1.5 at step 300 (the start of epoch 6 of 50 steps), then
    climbing on by ``climb_per_step`` (relative) each step, over a little noise."""
    noise = torch.randn(600, generator=torch.Generator().manual_seed(1)).mul(0.01).exp().tolist()
    return [
        (0.5 + 2.0 * max(0.0, 1 - t / 250) if t < 300 else 1.5 * (1 + climb_per_step) ** (t - 300)) * noise[t]
        for t in range(600)
    ]


@pytest.mark.parametrize(("climb_per_step", "stopped"), [(0.0, False), (0.02, True)])
def test_a_loss_that_climbs_on_from_an_epoch_step_is_still_stopped(
    climb_per_step: float, stopped: bool, tmp_path: Path
) -> None:
    bundle = Curvecast(early_stopping=True, background=False, tensorboard=False, gradient_noise=False)
    module = CurveModule(curve=_curve(climb_per_step), items=50)
    tiny_trainer(tmp_path, [bundle], 600, logger=False, max_epochs=-1).fit(module)
    assert (bundle.early_stopping.stop_request is not None) is stopped
