"""Bytes written to TensorBoard: Lightning's own logging of a small run, and what ``Curvecast()`` adds to it.

Each run length is trained twice on CPU with a ``TensorBoardLogger`` at its defaults: once without curvecast (the
bytes Lightning writes: hparams and the module's ``self.log`` of the loss every ``log_every_n_steps``), once with
``Curvecast()`` at its defaults. Curvecast's bytes are the difference; they should grow with the number of forecasts
(one per ``forecast_every`` steps), not with the number of steps.

    python benchmarks/tensorboard_output_size.py [--steps 300 3000] [--forecast-every 100]

Measured on a shared 2-core CPU (``--steps 300 3000 30000``): 645 / 5,667 / 56,433 bytes from Lightning, and curvecast
adds 16.5 KB / 128 KB / 435 KB for 3 / 30 / 100 forecasts (the forecast budget spaced the 30,000-step run's), about
4.3-5.5 KB per forecast, in the run directory itself ("runs" counts the directories TensorBoard lists).
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from curvecast import Curvecast


class PowerLawModule(pl.LightningModule):
    """Training loss ``2 + 3 (t + 1)^-0.5`` with 1% noise at step t; logs it the usual way (``self.log``)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.steps = steps
        self.noise = torch.randn(steps + 8, generator=torch.Generator().manual_seed(0)).mul(0.01).tolist()

    def training_step(self, batch, batch_idx):
        t = int(self.global_step)
        loss = self.w * 0.0 + (2.0 + 3.0 * (t + 1) ** -0.5) * math.exp(self.noise[t % len(self.noise)])
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(self.steps, 1)), batch_size=1)


def run_bytes(root: Path, steps: int, callbacks: list) -> tuple[int, int]:
    """Train one run; returns (bytes under its log dir, number of run directories TensorBoard would list)."""
    logger = TensorBoardLogger(str(root), name="run")
    trainer = pl.Trainer(
        max_steps=steps,
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(PowerLawModule(steps))
    log_dir = Path(logger.log_dir)
    files = [p for p in log_dir.rglob("*") if p.is_file()]
    runs = {p.parent for p in files if "tfevents" in p.name}
    return sum(p.stat().st_size for p in files), len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--forecast-every", type=int, default=100)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("curvecast").setLevel(logging.ERROR)  # its forecast lines and advice would bury the table
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    print(f"{'steps':>6} {'forecasts':>9} {'lightning B':>12} {'+ curvecast B':>14} {'ratio':>7} "
          f"{'B/forecast':>11} {'runs':>5}")  # fmt: skip
    for steps in args.steps:
        with tempfile.TemporaryDirectory() as tmp:
            plain, _ = run_bytes(Path(tmp) / "plain", steps, [])
            bundle = Curvecast(forecast_every=args.forecast_every)
            total, runs = run_bytes(Path(tmp) / "curvecast", steps, [bundle])
        forecasts = sum(r.forecast is not None for r in bundle.reports)
        added = total - plain
        print(f"{steps:>6} {forecasts:>9} {plain:>12} {added:>14} {added / max(plain, 1):>7.1f} "
              f"{added / max(forecasts, 1):>11.0f} {runs:>5}")  # fmt: skip


if __name__ == "__main__":
    from results import recorded

    with recorded("tensorboard_output_size"):
        main()
