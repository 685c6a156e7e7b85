"""The demo job: a tiny character-level transformer trained on CPU with Curvecast watching it.

The text is generated in the process (a small random grammar), so nothing is downloaded. The schedule is a linear
warmup followed by a cosine decay, written as a LambdaLR, the way most language-model recipes write it.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from curvecast.live.bundle import Curvecast

__all__ = ["CharTransformer", "DemoConfig", "DemoResult", "DemoRun", "GeneratedText", "run_demo"]

_SUBJECTS = ["the cat", "a dog", "my friend", "the model", "our team", "a small bird", "the river"]
_VERBS = ["sees", "likes", "follows", "finds", "trains", "watches", "carries"]
_OBJECTS = ["the ball", "a tree", "the loss", "some bread", "a red kite", "the old map", "a curve"]
_ENDINGS = [".", " today.", " again.", " at night.", " slowly."]
VOCAB = sorted(set(" ".join(_SUBJECTS + _VERBS + _OBJECTS + _ENDINGS)))


def generate_text(n_sentences: int, seed: int) -> str:
    """Sentences from a small grammar: predictable enough to learn in a few hundred steps, noisy enough to plateau."""
    rng = random.Random(seed)
    return " ".join(
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_ENDINGS)}"
        for _ in range(n_sentences)
    )


class GeneratedText(Dataset):
    """Random windows of ``block_size + 1`` characters from generated text, as (input, next-character) pairs."""

    def __init__(self, block_size: int = 48, n_sentences: int = 4000, seed: int = 0) -> None:
        text = generate_text(n_sentences, seed)
        index = {ch: i for i, ch in enumerate(VOCAB)}
        self.data = torch.tensor([index[ch] for ch in text], dtype=torch.long)
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.data) - self.block_size - 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.data[i : i + self.block_size + 1]
        return chunk[:-1], chunk[1:]


class CharTransformer(pl.LightningModule):
    """A two-layer causal transformer over characters."""

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 48,
        width: int = 48,
        layers: int = 2,
        heads: int = 4,
        lr: float = 3e-3,
        warmup_steps: int = 30,
        max_steps: int = 300,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(block_size, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        mask = torch.triu(torch.full((block_size, block_size), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape
        # Positions with the batch dimension, as the tokens have it: each example's gradient is then its own.
        h = self.token(x) + self.position(torch.arange(t, device=x.device).expand(b, t))
        h = self.blocks(h, mask=self.causal_mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warmup, total = self.hparams.warmup_steps, self.hparams.max_steps

        def warmup_cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@dataclass(frozen=True)
class DemoConfig:
    max_steps: int = 300
    batch_size: int = 16
    block_size: int = 48
    logdir: str = "curvecast_logs"
    seed: int = 0
    forecast_every: int = 25
    val_every: int = 50
    target: float = 1.0  # training loss (nats per character) both runs aim for
    small_width: int = 16  # the second run's model: too small to reach the target


def build_trainer(config: DemoConfig, callbacks: list, name: str) -> pl.Trainer:
    from pytorch_lightning.loggers import TensorBoardLogger

    logger = TensorBoardLogger(config.logdir, name="demo", version=name, default_hp_metric=False)
    return pl.Trainer(
        max_steps=config.max_steps,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        log_every_n_steps=10,
        val_check_interval=config.val_every,
        check_val_every_n_epoch=None,
        limit_val_batches=4,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


@dataclass(frozen=True)
class DemoRun:
    name: str
    bundle: Curvecast
    steps_done: int
    log_dir: Path


@dataclass(frozen=True)
class DemoResult:
    runs: list[DemoRun]
    logdir: Path
    seconds: float


def train_one(config: DemoConfig, name: str, width: int) -> DemoRun:
    """One run of the demo recipe with Curvecast watching it, its target set and early stopping on."""
    pl.seed_everything(config.seed, verbose=False)
    train = GeneratedText(config.block_size, seed=config.seed)
    val = GeneratedText(config.block_size, n_sentences=400, seed=config.seed + 1)
    model = CharTransformer(len(VOCAB), config.block_size, width=width, max_steps=config.max_steps)
    # The demo forecasts on a fixed cadence whatever the machine's speed, so its early stop shows the same everywhere:
    # inline (a fit every 25 steps, tens of ms each), since a fit in the background lands when the machine lets it.
    bundle = Curvecast(
        forecast_every=config.forecast_every, target=config.target, early_stopping=True, forecast_budget=None,
        background=False,
    )  # fmt: skip
    trainer = build_trainer(config, [bundle], name)
    trainer.fit(
        model,
        DataLoader(train, batch_size=config.batch_size, shuffle=True),
        DataLoader(val, batch_size=config.batch_size),
    )
    return DemoRun(name, bundle, trainer.global_step, Path(trainer.logger.log_dir))


def run_demo(config: DemoConfig = DemoConfig()) -> DemoResult:
    """Train the recipe twice with the same target: a model that can reach it, and one too small to.

    The first runs to the end with its forecasts; the second is stopped early once its forecast says the target is
    out of reach. Both write TensorBoard logs under ``config.logdir/demo``.
    """
    start = time.perf_counter()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    runs = [train_one(config, "width_48", 48), train_one(config, f"width_{config.small_width}", config.small_width)]
    return DemoResult(runs, Path(config.logdir), time.perf_counter() - start)
