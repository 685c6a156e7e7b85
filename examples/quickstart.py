"""Quickstart: watch a training run with Curvecast and read its forecasts in TensorBoard.

    python examples/quickstart.py            # 1,000 steps, under half a minute on a laptop CPU
    tensorboard --logdir quickstart_logs

A small MLP learns a noisy regression task under a warmup + cosine schedule. Curvecast captures the loss and the LR
schedule, forecasts the final loss with an 80% interval at most every 50 steps, and reports anomalies. The steps are
so fast that the forecast budget (at most 5% of the run's time) spaces the forecasts out: expect a few
`curvecast step ...` lines rather than twenty, then the last forecast printed at the end.
"""

from __future__ import annotations

import argparse
import math

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from curvecast import Curvecast


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 3e-3, warmup_steps: int = 50, max_steps: int = 1000) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x).squeeze(-1), y))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        warmup, total = self.hparams.warmup_steps, self.hparams.max_steps

        def warmup_cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min((step - warmup) / (total - warmup), 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def make_data(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=generator)
    y = torch.sin(x[:, :4].sum(-1)) + 0.5 * x[:, 4] * x[:, 5] + 0.1 * torch.randn(n, generator=generator)
    return TensorDataset(x, y)


def main(max_steps: int = 1000, logdir: str = "quickstart_logs") -> Curvecast:
    L.seed_everything(0)
    curvecast = Curvecast(forecast_every=50)
    trainer = L.Trainer(
        max_steps=max_steps,
        callbacks=[curvecast],  # always inside a list
        logger=TensorBoardLogger(logdir, name="quickstart"),
        val_check_interval=min(200, max_steps),
        check_val_every_n_epoch=None,
        enable_checkpointing=False,
    )
    model = Regressor(max_steps=max_steps)
    trainer.fit(
        model,
        DataLoader(make_data(8192, 0), batch_size=64, shuffle=True),
        DataLoader(make_data(1024, 1), batch_size=256),
    )
    report = curvecast.last_report
    if report is not None and report.forecast is not None and report.forecast.ok:
        lo, hi = report.forecast.interval(0.8)
        print(f"forecast of the final loss: {report.forecast.final:.4f} (80% interval {lo:.4f} .. {hi:.4f})")
    return curvecast


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=1000, help="optimizer steps to train (default: %(default)s)")
    parser.add_argument("--logdir", default="quickstart_logs", help="TensorBoard log directory (default: %(default)s)")
    args = parser.parse_args()
    main(args.max_steps, args.logdir)
