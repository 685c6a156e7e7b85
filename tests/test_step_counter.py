"""``steps_taken`` reads the loop's counters directly and must agree with ``trainer.global_step`` at every hook."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from curvecast._lightning import steps_taken
from tiny_models import TinyRegression, TinyRegressionL, loader

HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
         "on_before_zero_grad", "on_train_batch_end", "on_validation_end", "on_train_end")  # fmt: skip


def _agreement(base: type) -> type:
    class Agreement(base):
        """Compares the two readings in every hook a sensor reads the step in."""

        def __init__(self) -> None:
            self.readings: list[tuple[int, int]] = []
            for hook in HOOKS:
                setattr(self, hook, self._compare)

        def _compare(self, trainer, *args, **kwargs):
            self.readings.append((steps_taken(trainer), int(trainer.global_step)))

    return Agreement


@pytest.mark.parametrize(
    ("module", "kwargs"),
    [
        (TinyRegression(), {}),
        (TinyRegression(), {"accumulate_grad_batches": 3}),
        (TinyRegression(manual=True), {}),
    ],
    ids=["automatic", "accumulation", "manual"],
)
def test_agrees_with_global_step_at_every_hook(module, kwargs, quiet_trainer_kwargs):
    check = _agreement(pl.Callback)()
    trainer = pl.Trainer(max_steps=7, callbacks=[check], limit_val_batches=1, val_check_interval=4,
                         **kwargs, **quiet_trainer_kwargs)  # fmt: skip
    trainer.fit(module, loader(n=64), loader(n=16))
    assert len(check.readings) > 30
    assert [a for a, _ in check.readings] == [b for _, b in check.readings]
    assert check.readings[-1][1] == 7


def test_agrees_after_a_resume_and_in_the_lightning_flavour(tmp_path, quiet_trainer_kwargs):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = {**quiet_trainer_kwargs, "enable_checkpointing": True}
    L.Trainer(max_steps=5, callbacks=[checkpoint], **first).fit(TinyRegressionL(), loader(n=64))
    check = _agreement(L.Callback)()
    trainer = L.Trainer(max_steps=9, callbacks=[check], **quiet_trainer_kwargs)
    trainer.fit(TinyRegressionL(), loader(n=64), ckpt_path=checkpoint.last_model_path)
    assert check.readings[0] == (5, 5)
    assert [a for a, _ in check.readings] == [b for _, b in check.readings]
