"""Lightning callbacks that change a run's LR schedule mid-fit (StochasticWeightAveraging's SWALR, a LearningRateFinder
searching again, optimizers set up again): planned again from the new schedulers, said in one line, no warning. An LR
set by hand still drops the schedule with a warning."""

import logging
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.optim import lr_scheduler as S

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from tiny_models import TinyRegression, loader

DROPPED = "forecasting without the LR schedule"


class EpochStepped(TinyRegression):
    """SGD at 0.05, with an epoch-interval StepLR when ``decay`` (SWA swaps a scheduler stepped every epoch)."""

    def __init__(self, decay: bool = False, lr: float = 0.05) -> None:
        super().__init__(lr=lr)
        self.decay = decay

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        if not self.decay:
            return optimizer
        scheduler = S.StepLR(optimizer, step_size=1, gamma=0.8)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def _fit(model, callbacks, quiet_trainer_kwargs, caplog, batch_size=8, samples=64, validate=False, **trainer_kwargs):
    """Fit ``model`` for 4 epochs of ``samples`` beside a forecasting bundle; the bundle, the curvecast warnings and
    the curvecast log lines."""
    bundle = Curvecast(forecast_budget=None, forecast_every=4, background=False, tensorboard=False, alerts=False)
    trainer = pl.Trainer(max_epochs=4, callbacks=[bundle, *callbacks], **{**quiet_trainer_kwargs, **trainer_kwargs})
    val = loader(n=16) if validate else None
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="curvecast"):
        warnings.simplefilter("always")
        trainer.fit(model, loader(n=samples, batch_size=batch_size), val)
    said = [r.getMessage() for r in caplog.records if r.name == "curvecast"]
    return bundle, [str(w.message) for w in caught if issubclass(w.category, CurvecastWarning)], said


def _assert_planned_as_run(bundle, changed_from: int) -> None:
    """The schedule is known to the end, planned again after ``changed_from``, and its LRs are the ones the run used."""
    capture = bundle.lr_capture
    schedule = capture.schedule()
    assert schedule is not None
    assert capture.planned.known
    assert capture.planned.start >= changed_from  # planned again, from the new schedulers
    assert bundle.last_report is not None
    assert bundle.last_report.lr_schedule_known
    assert bundle.last_report.schedule is schedule
    assert bundle.brain._watched_schedule is schedule  # the detectors were handed the new plan
    used = capture.history.series("lr")
    steps = used.steps.astype(int)
    np.testing.assert_array_equal(steps, np.arange(capture.horizon))  # every step's LR recorded, after it too
    np.testing.assert_allclose(schedule.lrs[steps], used.values, rtol=1e-9)
    assert used.values[changed_from] != pytest.approx(used.values[changed_from - 1], rel=1e-3)  # it jumped there


@pytest.mark.parametrize("decay", [False, True], ids=["no_scheduler", "epoch_steplr"])
@pytest.mark.parametrize("found", ["in_a_step", "at_a_validation"])
def test_stochastic_weight_averaging_swaps_in_its_swalr_and_the_schedule_is_planned_again(
    decay, found, quiet_trainer_kwargs, caplog
):
    # SWA from the second epoch (index 1), annealing to 0.01 over 2 epochs: the LR first moves at the third epoch.
    swa = pl.callbacks.StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=2, annealing_epochs=2)
    if found == "in_a_step":  # LRs checked at every step: the change is found inside the optimizer step
        kwargs = {"batch_size": 8, "log_every_n_steps": 1}
    else:  # 4 steps an epoch, checked every 8: the change is found when the validation flushes them
        kwargs = {"batch_size": 16, "validate": True, "log_every_n_steps": 50}
    bundle, warned, said = _fit(EpochStepped(decay), [swa], quiet_trainer_kwargs, caplog, **kwargs)
    assert not [w for w in warned if DROPPED in w]
    steps_per_epoch = 64 // kwargs["batch_size"]
    changed = [line for line in said if "the LR schedule changed" in line]
    replaced = "in place of StepLR" if decay else "added"
    assert changed == [
        f"curvecast: the LR schedule changed at step {2 * steps_per_epoch} (StochasticWeightAveraging's SWALR "
        f"{replaced}): forecasting with the new plan"
    ]
    _assert_planned_as_run(bundle, 2 * steps_per_epoch)
    assert bundle.lr_capture.history.series("lr").values[-1] == pytest.approx(0.01)


class LRSetInTrainingStep(EpochStepped):
    def training_step(self, batch, batch_idx):
        if self.global_step == 12:
            for group in self.optimizers().optimizer.param_groups:
                group["lr"] = 0.02
        return super().training_step(batch, batch_idx)


def test_an_lr_set_by_hand_beside_a_scheduler_still_drops_the_schedule_with_the_warning(quiet_trainer_kwargs, caplog):
    bundle, warned, said = _fit(LRSetInTrainingStep(decay=True), [], quiet_trainer_kwargs, caplog)
    dropped = [w for w in warned if DROPPED in w]
    assert len(dropped) == 1
    assert "the LR of step 12 is 0.02, not the planned 0.04" in dropped[0]
    assert "changed outside Lightning's scheduler stepping" in dropped[0]
    assert not [line for line in said if "the LR schedule changed" in line]
    assert bundle.lr_capture.schedule() is None
    assert not bundle.last_report.lr_schedule_known


class FineTuneLearningRateFinder(pl.callbacks.LearningRateFinder):
    """Lightning's documented recipe: an LR search at the start of chosen epochs, the found LR set on the optimizer."""

    def __init__(self, milestones, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.milestones = milestones

    def on_fit_start(self, *args, **kwargs):
        return

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch in self.milestones:
            self.lr_find(trainer, pl_module)


class CosinePerStep(TinyRegression):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        scheduler = {"scheduler": S.CosineAnnealingLR(optimizer, T_max=128), "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


@pytest.mark.parametrize("module", [TinyRegression, CosinePerStep], ids=["no_scheduler", "cosine"])
def test_a_learning_rate_search_at_a_later_epoch_plans_the_schedule_again(module, quiet_trainer_kwargs, caplog):
    finder = FineTuneLearningRateFinder((2,), min_lr=1e-4, max_lr=0.2, num_training_steps=24, early_stop_threshold=None)
    # 16 steps an epoch: the search's 24 steps fit in the two epochs left (it runs within the fit's `max_epochs`).
    bundle, warned, said = _fit(module(), [finder], quiet_trainer_kwargs, caplog, samples=128)
    assert finder.optimal_lr is not None
    assert finder.optimal_lr.suggestion() is not None
    assert not [w for w in warned if DROPPED in w]
    assert [line for line in said if "the LR schedule changed" in line] == [
        "curvecast: the LR schedule changed at step 32 (FineTuneLearningRateFinder's new LR search): forecasting "
        "with the new plan"
    ]
    _assert_planned_as_run(bundle, 32)


class SetsUpOptimizersAgain(pl.Callback):
    """Gives the run a new optimizer (and scheduler) at the third epoch, from ``configure_optimizers`` at a new LR."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            pl_module.lr = 0.01
            trainer.strategy.setup_optimizers(trainer)


@pytest.mark.parametrize("decay", [False, True], ids=["no_scheduler", "epoch_steplr"])
def test_optimizers_set_up_again_mid_run_are_followed_and_planned_again(decay, quiet_trainer_kwargs, caplog):
    bundle, warned, said = _fit(EpochStepped(decay), [SetsUpOptimizersAgain()], quiet_trainer_kwargs, caplog)
    assert not [w for w in warned if DROPPED in w]
    changed = [line for line in said if "the LR schedule changed" in line]
    assert len(changed) == 1
    assert "the LR schedule changed at step 16 (a new SGD optimizer" in changed[0]
    assert ("StepLR in place of StepLR" in changed[0]) == decay
    _assert_planned_as_run(bundle, 16)
    assert bundle.lr_capture.history.series("lr").values[16] == pytest.approx(0.01)


class PlateauAfterSetUpAgain(EpochStepped):
    """Its optimizers, set up again, come with a ReduceLROnPlateau: a schedule no replay can plan."""

    def configure_optimizers(self):
        if self.lr == 0.05:
            return super().configure_optimizers()
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        plateau = {"scheduler": S.ReduceLROnPlateau(optimizer), "monitor": "val_loss"}
        return {"optimizer": optimizer, "lr_scheduler": plateau}


def test_schedulers_swapped_for_ones_no_replay_can_plan_drop_the_schedule_saying_what_changed(
    quiet_trainer_kwargs, caplog
):
    run = _fit(
        PlateauAfterSetUpAgain(decay=True), [SetsUpOptimizersAgain()], quiet_trainer_kwargs, caplog, validate=True
    )
    bundle, warned, said = run
    assert not [w for w in warned if DROPPED in w]  # nothing to fix: said at info
    dropped = [line for line in said if DROPPED in line]
    assert len(dropped) == 1
    assert (
        "the LR schedule changed at step 16 (a new SGD optimizer; ReduceLROnPlateau in place of StepLR)" in dropped[0]
    )
    assert "ReduceLROnPlateau depends on future metrics" in dropped[0]
    assert not [line for line in said if "forecasting with the new plan" in line]
    assert bundle.lr_capture.schedule() is None
    assert not bundle.last_report.lr_schedule_known
