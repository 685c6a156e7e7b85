"""Counting a step's FLOPs under a gradient penalty: ``torch.autograd.grad`` with respect to the input batch.

WGAN-GP critics, R1-regularized discriminators and physics-informed networks differentiate their output with respect to
a leaf input inside ``training_step``. ``FlopCounterMode``'s module tracker hooks every module's inputs into autograd,
and its hook raises in such a call: the first step of every such run crashed under ``Curvecast()``.
"""

from __future__ import annotations

import lightning.pytorch as lp
import torch
from torch import nn

from curvecast import Curvecast
from curvecast.callbacks.throughput import Throughput
from run_helpers import tiny_trainer


class PenalizedCritic(lp.LightningModule):
    """A critic with a WGAN-GP style penalty: |d critic(x) / dx| pulled to 1 on the input batch itself."""

    def __init__(self) -> None:
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        x = x.requires_grad_(True)  # a leaf: the case the module tracker's hook cannot handle
        score = self.critic(x)
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
        return -score.mean() + 10.0 * ((grad.norm(dim=1) - 1) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))
        return torch.utils.data.DataLoader(data, batch_size=8)


def test_a_gradient_penalty_trains_and_its_flops_are_counted(tmp_path):
    throughput = Throughput()
    bundle = Curvecast(throughput=throughput, background=False, tensorboard=False, forecast_every=5)
    trainer = tiny_trainer(tmp_path, [bundle], 12, logger=False, flavour=lp)
    trainer.fit(PenalizedCritic())
    assert trainer.global_step == 12
    assert len(bundle.history.series("loss").values) == 12
    forward = 2 * 8 * (2 * 16 + 16 * 1)  # one micro-batch of 8 through both layers
    assert throughput.flops_per_batch is not None
    assert throughput.flops_per_batch > 2 * forward  # forward, the penalty's gradient and the backward through both
