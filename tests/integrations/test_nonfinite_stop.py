"""A NaN loss stops the run at its own step, before its update: weights and checkpoints keep their finite values."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from curvecast import Curvecast
from curvecast.integrations import ForecastEarlyStopping, StopReason
from run_helpers import tiny_trainer
from tiny_models import LeaveTogether, TinyRegression, loader

NAN_STEP = 25


class NanAtStep(TinyRegression):
    """Linear regression whose loss turns NaN at one optimizer step (on one rank only, when ``rank`` is given)."""

    def __init__(self, nan_step: int = NAN_STEP, rank: int | None = None) -> None:
        super().__init__()
        self.nan_step, self.rank = nan_step, rank
        self.weights_before_nan: torch.Tensor | None = None

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.trainer.global_step == self.nan_step and self.rank in (None, self.global_rank):
            self.weights_before_nan = self.layer.weight.detach().clone()
            loss = loss * float("nan")
        return loss


def _weights(path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["state_dict"]["layer.weight"]


def _stopping(asked_as: str) -> tuple[list[pl.Callback], ForecastEarlyStopping]:
    """The Trainer's callbacks with early stopping asked for ``asked_as`` a user may, and its stopper."""
    settings = {"forecast_budget": None, "forecast_every": 100, "background": False}
    if asked_as == "early_stopping=True":
        bundle = Curvecast(early_stopping=True, **settings)
        return [bundle], bundle.early_stopping
    stopper = ForecastEarlyStopping()
    if asked_as == "actuators":
        return [Curvecast(actuators=[stopper], **settings)], stopper
    return [Curvecast(**settings), stopper], stopper  # beside the bundle in the Trainer's callbacks


@pytest.mark.parametrize(("log_every_n_steps", "asked_as"), [
    (1, "early_stopping=True"), (50, "early_stopping=True"), (50, "actuators"), (50, "beside"),
])  # fmt: skip
def test_a_nan_loss_stops_at_its_step_and_no_checkpoint_holds_nan_weights(tmp_path, log_every_n_steps, asked_as):
    callbacks, stopper = _stopping(asked_as)
    bundle = callbacks[0]
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True, save_top_k=-1)
    trainer = tiny_trainer(tmp_path, [*callbacks, checkpoints], 60, logger=False, enable_checkpointing=True,
                           log_every_n_steps=log_every_n_steps)  # fmt: skip
    model = NanAtStep()
    trainer.fit(model, loader(n=512))

    request = stopper.stop_request
    assert request.reason is StopReason.NON_FINITE
    assert request.step == NAN_STEP
    assert trainer.global_step == NAN_STEP + 1  # the NaN step is the last one taken
    # Its update was skipped: the weights are those from before it, in memory and in every checkpoint written.
    torch.testing.assert_close(model.layer.weight.detach(), model.weights_before_nan)
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert saved
    for path in saved:
        assert torch.isfinite(_weights(path)).all(), path.name
    torch.testing.assert_close(_weights(tmp_path / "ckpt" / "last.ckpt"), model.weights_before_nan)
    assert any(a.kind == "nonfinite" and a.step == NAN_STEP for a in bundle.alerts.alerts)


def test_without_early_stopping_a_nan_is_reported_but_the_run_goes_on(quiet_trainer_kwargs):
    bundle = Curvecast(forecast_budget=None, forecast_every=100, background=False)
    trainer = pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs)
    trainer.fit(NanAtStep(), loader(n=512))
    assert trainer.global_step == 40
    assert any(a.kind == "nonfinite" and a.step == NAN_STEP for a in bundle.alerts.alerts)


class _StoppedTogether(pl.Callback):
    """Inside each DDP worker: both ranks stopped at the NaN step with finite weights; a mark per rank."""

    def __init__(self, marks) -> None:
        self.marks = marks

    def on_train_end(self, trainer, pl_module):
        steps = trainer.strategy.all_gather(torch.tensor(trainer.global_step))
        assert steps.min() == steps.max() == NAN_STEP + 1, steps
        assert torch.isfinite(pl_module.layer.weight).all()
        (self.marks / f"rank{trainer.global_rank}").write_text(str(trainer.global_step))


@pytest.mark.ddp
@pytest.mark.timeout(240)
def test_under_ddp_a_nan_on_one_rank_stops_every_rank_at_that_step(tmp_path):
    bundle = Curvecast(forecast_budget=None, early_stopping=True, forecast_every=100, background=False)
    callbacks = [bundle, _StoppedTogether(tmp_path), LeaveTogether()]
    trainer = tiny_trainer(tmp_path, callbacks, 60, logger=False, devices=2, strategy="ddp_spawn")
    trainer.fit(NanAtStep(rank=1), loader(n=512))
    assert (tmp_path / "rank0").read_text() == (tmp_path / "rank1").read_text() == str(NAN_STEP + 1)
