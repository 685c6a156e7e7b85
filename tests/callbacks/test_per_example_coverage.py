"""Per-example source on a transformer-like model: layers it cannot see are left out of both norms alike."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from gns_helpers import SEQ, VOCAB, assert_squared_norm, per_example_grads, seq_data, seq_loss
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.failsafe import CurvecastWarning
from run_helpers import tiny_trainer

DIM = 8


class TinyAttention(nn.Module):
    """Token + position embeddings, one attention layer, a head: like the first block of a language model."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Embedding(VOCAB, DIM)
        self.position = nn.Embedding(SEQ, DIM)  # indexed by arange(T): no batch dimension, no per-example gradient
        self.attention = nn.MultiheadAttention(DIM, 2, batch_first=True)  # calls out_proj through its weight
        self.head = nn.Linear(DIM, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.token(ids) + self.position(torch.arange(ids.shape[1]))
        h, _ = self.attention(h, h, h, need_weights=False)
        return self.head(h.mean(dim=1))


# Only these have per-example norms: the position embedding and the attention's parameters are not seen.
SEEN = ["token.weight", "head.weight", "head.bias"]


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = TinyAttention().double()

    def training_step(self, batch, batch_idx):
        return seq_loss(self.model(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(TensorDataset(*seq_data(24)), batch_size=8)


class ExactSeen(pl.Callback):
    def __init__(self, gns: GradientNoiseScale) -> None:
        self.gns, self.batch, self.checked = gns, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch = batch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        per = per_example_grads(pl_module.model, seq_loss, *self.batch)
        flat = torch.cat([per[name].flatten(1) for name in SEEN], dim=1)
        assert_squared_norm(self.gns.last_small_sq, flat.square().sum(1).mean())
        assert_squared_norm(self.gns.last_big_sq, flat.mean(0).square().sum())
        self.checked += 1


def test_batchless_and_unhooked_layers_are_left_out_of_both_norms(tmp_path):
    gns = GradientNoiseScale(source="per_example", sample_every_n_steps=1)
    probe = ExactSeen(gns)
    trainer = tiny_trainer(tmp_path, [gns, probe], 3, logger=False, precision="64-true")
    with pytest.warns(CurvecastWarning, match="inputs without the batch dimension"):
        trainer.fit(Module())
    # Every step is measured, on exactly the parameters the per-example norms cover.
    assert probe.checked == 3
    assert gns.estimator.read().updates == 3
