"""FetchTimer times Lightning's fetch of each training batch, and nothing else the loop does between batches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
from sim_clock import SimClock

from curvecast.callbacks.measures.fetch_timer import FetchTimer
from tiny_models import TinyRegression, loader


def test_wraps_the_loops_two_fetch_brackets_and_gives_them_back(quiet_trainer_kwargs):
    seen = []

    class Look(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(sorted(n for n in vars(trainer.fit_loop.epoch_loop) if n.endswith("_fetch")))

    timer = FetchTimer()

    class Attach(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            timer.attach(trainer)

        def on_train_end(self, trainer, pl_module):
            timer.detach()

    trainer = pl.Trainer(max_steps=4, callbacks=[Attach(), Look()], **quiet_trainer_kwargs)
    trainer.fit(TinyRegression(), loader(n=64))
    assert seen == [["_on_after_fetch", "_on_before_fetch"]] * 4  # two methods of the loop, not every profiled action
    assert timer.measured
    assert not [n for n in vars(trainer.fit_loop.epoch_loop) if n.endswith("_fetch")]


def test_without_the_loops_brackets_it_times_the_profilers_fetch_action_alone():
    clock = SimClock()
    calls = []
    profiler = SimpleNamespace(start=lambda name: calls.append(("start", name)),
                               stop=lambda name: calls.append(("stop", name)))  # fmt: skip
    timer = FetchTimer(clock)
    timer.attach(SimpleNamespace(profiler=profiler))
    profiler.start("[Callback]Bar.on_train_batch_end")
    clock.advance(0.5)
    profiler.stop("[Callback]Bar.on_train_batch_end")
    profiler.start("[_TrainingEpochLoop].train_dataloader_next")
    clock.advance(0.25)
    profiler.stop("[_TrainingEpochLoop].train_dataloader_next")
    assert timer.take() == pytest.approx(0.25, abs=0.01)
    assert len(calls) == 4  # the profiler still sees every action
    timer.detach()
    profiler.start("after")
    assert calls[-1] == ("start", "after")  # its own methods given back


def test_a_failed_run_leaves_no_hook_on_the_model_nor_on_the_loop(quiet_trainer_kwargs):
    from curvecast import Curvecast

    class FailsOnASampledStep(TinyRegression):
        def training_step(self, batch, batch_idx):
            if self.global_step == 20:  # the noise scale samples steps 0, 10, 20: its hooks are on the model now
                assert any(m._forward_hooks for m in self.modules())
                raise RuntimeError("the run fails here")
            return super().training_step(batch, batch_idx)

    module = FailsOnASampledStep()
    trainer = pl.Trainer(max_steps=40, callbacks=[Curvecast()], **quiet_trainer_kwargs)
    with pytest.raises(RuntimeError, match="fails here"):
        trainer.fit(module, loader(n=400))
    assert not any(m._forward_hooks for m in module.modules())
    assert not [n for n in vars(trainer.fit_loop.epoch_loop) if n.endswith("_fetch")]
