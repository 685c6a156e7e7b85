"""Tiny models and exact per-example gradients (torch.func, float64) shared by the gradient-noise tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

VOCAB, DIM, SEQ = 11, 6, 5


class SeqModel(nn.Module):
    """Embedding -> LayerNorm -> Linear on a sequence -> mean over time -> Linear: every supported layer kind."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM, padding_idx=0)
        self.norm = nn.LayerNorm(DIM)
        self.seq = nn.Linear(DIM, 7)
        self.head = nn.Linear(7, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.seq(self.norm(self.emb(ids)))
        return self.head(torch.tanh(h).mean(dim=1))


def assert_squared_norm(measured: torch.Tensor | float, exact: torch.Tensor) -> None:
    """A squared norm the sensor measured (a float on a CPU, where its arithmetic runs on the host; a 0-d tensor on an
    accelerator) equals the exact one to float64 rounding."""
    measured = torch.as_tensor(measured, dtype=torch.float64)
    torch.testing.assert_close(measured, exact.to(torch.float64), rtol=1e-9, atol=0)


def seq_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


def seq_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return ids, y


def per_example_grads(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example gradients {name: (N, *shape)} of ``loss_fn(model(x_i), y_i)`` with torch.func."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def single(p, xi, yi):
        return loss_fn(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    return vmap(grad(single), in_dims=(None, 0, 0))(params, x, y)


def per_example_sq_norms(grads: dict[str, torch.Tensor], names: list[str] | None = None) -> torch.Tensor:
    names = list(grads) if names is None else names
    return sum(grads[k].flatten(1).square().sum(dim=1) for k in names)


def population_noise_scale(grads: dict[str, torch.Tensor], names: list[str] | None = None) -> tuple[float, float]:
    """Exact ``(|G|^2, tr(Sigma))`` over the data set (population covariance) from per-example gradients."""
    names = list(grads) if names is None else names
    flat = torch.cat([grads[k].flatten(1) for k in names], dim=1)
    mean = flat.mean(dim=0)
    return float(mean.square().sum()), float((flat - mean).square().sum(dim=1).mean())


def mostly_one_class(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """seq_data with three labels in four set to 0: a consistent gradient, so B_simple is small (about 1.5)."""
    ids, y = seq_data(n, seed)
    keep = torch.rand(n, generator=torch.Generator().manual_seed(5)) < 0.25
    return ids, keep.long() * y


def make_module(
    pl,
    lr: float = 0.1,
    n: int = 64,
    batch_size: int = 8,
    seed: int = 0,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    replacement: bool = False,
):
    """A LightningModule of ``pl`` (``pytorch_lightning`` or ``lightning.pytorch``) around SeqModel.

    ``replacement=True`` draws batches with replacement (i.i.d., what the noise-scale identity assumes).
    """

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.model = SeqModel()
            self.ids, self.y = data if data is not None else seq_data(n, seed)

        def forward(self, ids):
            return self.model(ids)

        def training_step(self, batch, batch_idx):
            ids, y = batch
            return seq_loss(self.model(ids), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr)

        def train_dataloader(self):
            data = torch.utils.data.TensorDataset(self.ids, self.y)
            sampler = None
            if replacement:
                gen = torch.Generator().manual_seed(seed)
                sampler = torch.utils.data.RandomSampler(data, replacement=True, num_samples=100_000, generator=gen)
            return torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler)

    return Module()
