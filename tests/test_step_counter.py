"""``steps_taken`` and a ``StepReader`` read the loop's counters directly and must agree with ``trainer.global_step``
at every hook."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from curvecast._lightning import StepReader, optimizer_step_index, steps_taken
from tiny_models import TinyRegression, TinyRegressionL, loader

HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
         "on_before_zero_grad", "on_train_batch_end", "on_validation_end", "on_train_end")  # fmt: skip


def _agreement(base: type) -> type:
    class Agreement(base):
        """Compares the two readings in every hook a sensor reads the step in."""

        def __init__(self) -> None:
            self.readings: list[tuple[int, int]] = []
            self.indices: list[tuple[int, int]] = []
            self.reader: StepReader | None = None
            self.read: list[tuple[int, int, int]] = []  # the reader's, and what the walk from the Trainer gives
            for hook in HOOKS:
                setattr(self, hook, self._compare)

        def on_train_start(self, trainer, pl_module):
            self.reader = StepReader(trainer)  # as a sensor makes it, once per fit

        def _compare(self, trainer, *args, **kwargs):
            self.readings.append((steps_taken(trainer), int(trainer.global_step)))
            # The step a measured value belongs to: the steps per optimizer, as Lightning's loggers count them.
            self.indices.append((optimizer_step_index(trainer), int(trainer.global_step) // len(trainer.optimizers)))
            if self.reader is not None:
                taken, after = self.reader.taken_and_index()
                self.read.append((taken, self.reader.index(), after))
                assert self.read[-1] == (steps_taken(trainer), optimizer_step_index(trainer),
                                         optimizer_step_index(trainer, after_step=True))  # fmt: skip

    return Agreement


class TwoOptimizers(TinyRegression):
    """Manual optimization with two optimizers, each stepped once per batch (a GAN's loop)."""

    def __init__(self) -> None:
        super().__init__(manual=True)
        self.other = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        for optimizer, layer in zip(self.optimizers(), (self.layer, self.other), strict=True):
            loss = torch.nn.functional.mse_loss(layer(x).squeeze(-1), y)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
        return loss

    def configure_optimizers(self):
        return [torch.optim.SGD(self.layer.parameters(), lr=0.05), torch.optim.SGD(self.other.parameters(), lr=0.05)]


@pytest.mark.parametrize(
    ("module", "kwargs"),
    [
        (TinyRegression(), {}),
        (TinyRegression(), {"accumulate_grad_batches": 3}),
        (TinyRegression(manual=True), {}),
        (TwoOptimizers(), {}),
    ],
    ids=["automatic", "accumulation", "manual", "two optimizers"],
)
def test_agrees_with_global_step_at_every_hook(module, kwargs, quiet_trainer_kwargs):
    check = _agreement(pl.Callback)()
    trainer = pl.Trainer(max_steps=7, callbacks=[check], limit_val_batches=1, val_check_interval=4,
                         **kwargs, **quiet_trainer_kwargs)  # fmt: skip
    trainer.fit(module, loader(n=64), loader(n=16))
    assert len(check.readings) > 30
    assert [a for a, _ in check.readings] == [b for _, b in check.readings]
    assert [a for a, _ in check.indices] == [b for _, b in check.indices]
    assert check.readings[-1][1] >= 7  # two optimizers step twice a batch: 8
    assert len(check.read) > 30


def test_agrees_after_a_resume_and_in_the_lightning_flavour(tmp_path, quiet_trainer_kwargs):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = {**quiet_trainer_kwargs, "enable_checkpointing": True}
    L.Trainer(max_steps=5, callbacks=[checkpoint], **first).fit(TinyRegressionL(), loader(n=64))
    check = _agreement(L.Callback)()
    trainer = L.Trainer(max_steps=9, callbacks=[check], **quiet_trainer_kwargs)
    trainer.fit(TinyRegressionL(), loader(n=64), ckpt_path=checkpoint.last_model_path)
    assert check.readings[0] == (5, 5)
    assert check.read[0][0] == 5  # the reader made at the start of the resumed fit sees the restored count
    assert [a for a, _ in check.readings] == [b for _, b in check.readings]
