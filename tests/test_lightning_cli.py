"""LightningCLI of each flavour takes curvecast's callbacks from the command line."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch

from curvecast import Curvecast

pytest.importorskip("jsonargparse")


def _module(base):
    class Regression(base):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.lr = lr

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

        def train_dataloader(self):
            x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1)), batch_size=8)

    return Regression


@pytest.mark.parametrize(("cli_module", "base"), [("pytorch_lightning.cli", pl.LightningModule),
                                                  ("lightning.pytorch.cli", L.LightningModule)])  # fmt: skip
def test_callbacks_from_the_command_line(tmp_path, cli_module, base):
    import importlib

    cli = importlib.import_module(cli_module).LightningCLI(
        _module(base),
        args=[
            "fit",
            "--trainer.max_steps=12",
            "--trainer.accelerator=cpu",
            "--trainer.logger=false",
            "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.callbacks+=curvecast.Curvecast",
            "--trainer.callbacks.forecast_every=4",
            "--trainer.callbacks.background=false",
            "--trainer.callbacks.forecast_budget=null",
        ],
        save_config_kwargs={"overwrite": True},
    )
    bundle = next(c for c in cli.trainer.callbacks if isinstance(c, Curvecast))
    assert bundle.forecast_every == 4
    assert cli.trainer.global_step == 12
    # the first point past each multiple of 4 (losses reach the host after steps 7 and 11), the last at the end
    assert [r.step for r in bundle.reports if r.forecast is not None] == [7, 11]


def test_a_bare_callback_is_recognised_by_both_trainers(tmp_path):
    for trainer_cls in (pl.Trainer, L.Trainer):
        trainer = trainer_cls(callbacks=Curvecast(), logger=False, default_root_dir=tmp_path, accelerator="cpu")
        assert any(isinstance(c, Curvecast) for c in trainer.callbacks)
