"""ForecastEarlyStopping on real Trainers: out-of-reach targets stop early, reachable ones run to the end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning import Callback
from torch.utils.data import DataLoader, TensorDataset

from curvecast import Curvecast
from curvecast.integrations import ForecastEarlyStopping, ForecastStopRule, StopReason
from run_helpers import read_events, texts, tiny_trainer
from tiny_models import CurveModule, LeaveTogether

STEPS = 400


def _fit(tmp_path, target, module=None, **stopper_kwargs):
    stopper = ForecastEarlyStopping(ForecastStopRule(patience=2, **stopper_kwargs))
    bundle = Curvecast(forecast_budget=None, target=target, forecast_every=20, background=False, actuators=[stopper])
    trainer = tiny_trainer(tmp_path, [bundle], STEPS, log_every_n_steps=1)
    trainer.fit(module or CurveModule(STEPS))
    return trainer, stopper


def test_unreachable_target_stops_mid_epoch_before_half_budget(tmp_path):
    trainer, stopper = _fit(tmp_path, target=1.5)  # the loss floor is 2.0
    assert stopper.stop_request is not None
    assert stopper.stop_request.reason is StopReason.TARGET_OUT_OF_REACH
    assert trainer.global_step < STEPS // 2
    assert trainer.num_training_batches == STEPS  # the budget is one epoch: the stop came mid-epoch
    assert "chance of reaching the target 1.5" in stopper.stop_request.message

    events = read_events(trainer.logger.log_dir)
    stopped = events.Scalars("curvecast/early_stopping/stopped")
    assert [e.step for e in stopped] == [stopper.stop_request.step]
    assert any("`early_stop`" in t and "Stopped at step" in t for t in texts(events))


def test_reachable_target_runs_to_the_end(tmp_path):
    trainer, stopper = _fit(tmp_path, target=2.4)
    assert stopper.stop_request is None
    assert trainer.global_step == STEPS


def test_non_finite_loss_stops_at_once(tmp_path):
    module = CurveModule(STEPS, nan_from=100)
    trainer, stopper = _fit(tmp_path, target=None, module=module)
    assert stopper.stop_request.reason is StopReason.NON_FINITE
    assert trainer.global_step == 101  # the first NaN step, whose update was skipped, is the last one taken
    assert stopper.stop_request.step == 100


def test_without_target_stops_when_no_improvement_is_expected(tmp_path):
    flat = CurveModule(STEPS, floor=2.0, scale=0.05, power=1.0)
    trainer, stopper = _fit(tmp_path, target=None, module=flat, min_delta=0.02)
    assert stopper.stop_request.reason is StopReason.NO_IMPROVEMENT_EXPECTED
    assert trainer.global_step < STEPS // 2


def test_lr_drop_ahead_holds_the_stop_until_it_begins_when_asked(tmp_path):
    drop_at = 300
    module = CurveModule(STEPS, lr_drop_at=drop_at)
    trainer, stopper = _fit(tmp_path, target=1.5, module=module, pre_decay_scale=None)
    assert stopper.stop_request is not None
    assert stopper.stop_request.step >= drop_at
    assert trainer.global_step > drop_at


class CosineCurve(CurveModule):
    """Under a cosine LR schedule: the power law plus a part the LR holds up, ``lr_part`` at the peak LR, gone at 0."""

    def __init__(self, steps: int, lr_part: float, **kwargs) -> None:
        super().__init__(steps, **kwargs)
        self.lr_part = lr_part

    def value(self, t: int) -> float:
        return super().value(t) + self.lr_part * 0.5 * (1.0 + math.cos(math.pi * t / self.steps))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}


def test_a_hopeless_run_under_a_cosine_schedule_stops_well_before_its_end(tmp_path):
    trainer, stopper = _fit(tmp_path, target=1.5, module=CosineCurve(STEPS, lr_part=0.2))  # ends near 2.15
    assert stopper.stop_request is not None
    assert stopper.stop_request.reason is StopReason.TARGET_OUT_OF_REACH
    # At 55-60 % of the run with the calibrated intervals (`benchmarks/calibrate.py`); an interval too narrow to
    # cover 80 % of real runs stopped it before half, and stops real runs that would have got there.
    assert trainer.global_step < 0.6 * STEPS


def test_a_run_that_reaches_its_target_only_through_the_cosine_decay_runs_to_the_end(tmp_path):
    module = CosineCurve(STEPS, lr_part=0.6)  # 2.51 at mid-run, 2.15 at the end: the decay brings the target
    trainer, stopper = _fit(tmp_path, target=2.25, module=module)
    assert stopper.stop_request is None
    assert trainer.global_step == STEPS
    assert module.value(STEPS - 1) < 2.25 < module.value(STEPS // 2)


def test_standalone_next_to_the_bundle_attaches_itself(tmp_path):
    bundle = Curvecast(forecast_budget=None, target=1.5, forecast_every=20, background=False)
    stopper = ForecastEarlyStopping(ForecastStopRule(patience=2))
    trainer = tiny_trainer(tmp_path, [bundle, stopper], STEPS, log_every_n_steps=1)
    trainer.fit(CurveModule(STEPS))
    assert bundle.early_stopping is None
    assert [a for a in bundle.actuators if isinstance(a, ForecastEarlyStopping)] == [stopper]
    assert stopper.stop_request.reason is StopReason.TARGET_OUT_OF_REACH
    assert trainer.global_step < STEPS // 2


def test_state_dict_round_trip():
    stopper = ForecastEarlyStopping(ForecastStopRule(target=1.0))
    stopper.rule.wait = 2
    state = stopper.state_dict()
    restored = ForecastEarlyStopping(ForecastStopRule(target=1.0))
    restored.load_state_dict({**state, "peak_lr": 0.3})  # a key of an older checkpoint is ignored
    assert restored.state_dict() == state == {"rule": {"version": 1, "wait": 2}}


class _AgreeOnStop(Callback):
    """Inside each DDP worker: every rank stopped, at the same step, before half the budget; leaves a mark per rank."""

    def __init__(self, marks) -> None:
        self.marks = marks

    def on_train_end(self, trainer, pl_module):
        steps = trainer.strategy.all_gather(torch.tensor(trainer.global_step))
        assert trainer.should_stop
        assert steps.min() == steps.max() < STEPS // 2, steps
        (self.marks / f"rank{trainer.global_rank}").write_text(str(trainer.global_step))


@pytest.mark.ddp
@pytest.mark.timeout(240)
def test_ddp_ranks_stop_together(tmp_path):
    stopper = ForecastEarlyStopping(ForecastStopRule(patience=2))
    bundle = Curvecast(forecast_budget=None, target=1.5, forecast_every=20, background=False, actuators=[stopper])
    callbacks = [bundle, _AgreeOnStop(tmp_path), LeaveTogether()]
    trainer = tiny_trainer(tmp_path, callbacks, STEPS, log_every_n_steps=1, strategy="ddp_spawn", devices=2)
    trainer.fit(CurveModule(STEPS, items=2 * STEPS))
    assert trainer.global_step < STEPS // 2
    assert (tmp_path / "rank0").read_text() == (tmp_path / "rank1").read_text()


def test_the_stopper_takes_a_rule_and_nothing_else():
    assert ForecastEarlyStopping().rule.unknown_lr_extra_patience == 2
    with pytest.raises(TypeError, match="Expected `rule` to be a ForecastStopRule or None, but got float"):
        ForecastEarlyStopping(0.1)


def test_a_monitor_other_than_the_bundles_is_an_error():
    with pytest.raises(ValueError, match="acts on the forecasts of Curvecast's monitor, which is 'val_loss'"):
        Curvecast(forecast_budget=None, monitor="val_loss", early_stopping=ForecastEarlyStopping(monitor="loss"))
    stopper = ForecastEarlyStopping(monitor="val_loss")
    Curvecast(forecast_budget=None, monitor="val_loss", early_stopping=stopper)
    assert stopper.monitor == "val_loss"
    assert "val_loss" in stopper.state_key


class StepDecayCurve(CurveModule):
    """A loss that falls by 0.05 at each of three LR drops (StepLR-like, at steps 400, 800 and 1200)."""

    def __init__(self, noise: float = 0.02) -> None:
        t = np.arange(1500)
        drops = (t >= 400).astype(float) + (t >= 800) + (t >= 1200)
        scatter = np.exp(np.random.default_rng(0).normal(0, noise, 1500))
        curve = (0.45 + 0.5 / np.sqrt(1 + t / 20) - 0.05 * drops) * scatter
        super().__init__(curve=curve.tolist())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        drops = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[400, 800, 1200], gamma=0.3)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": drops, "interval": "step"}}


@pytest.mark.parametrize(("target", "stopped_at"), [(0.365, None), (0.2, 807)])
def test_a_step_schedule_is_not_stopped_before_its_drops_to_come_show(tmp_path, target, stopped_at):
    """After the first of three drops the LR is at 0.3 of its peak, a cosine's decay well under way: the plain check
    put 0.365 out of reach at step 807 (0.1%), which the loss reaches after the drop at 1200. A target far out of
    reach is still stopped there."""
    module = StepDecayCurve()
    assert min(module.curve) <= 0.365 < min(module.curve[:1200])
    bundle = Curvecast(target=target, early_stopping=True, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 1500, logger=False)
    trainer.fit(module)
    request = bundle.early_stopping.stop_request
    assert (request.step if request else None) == stopped_at
    assert trainer.global_step == (1500 if stopped_at is None else stopped_at + 1)


def test_a_target_reached_is_said_so_in_the_lines_that_follow(tmp_path):
    module = CurveModule(STEPS)  # 2 + 3 (t+1)^-0.5: below 2.3 from about step 100 on
    reached = next(t for t in range(STEPS) if module.value(t) <= 2.3)
    bundle = Curvecast(target=2.3, forecast_every=20, background=False, forecast_budget=None)
    tiny_trainer(tmp_path, [bundle], STEPS, logger=False).fit(module)
    lines = [line for line in bundle.forecast_logger.lines if "target 2.3" in line]
    after = [line for line in lines if int(line.split("step ")[1].split("/")[0]) >= reached]
    assert after
    assert all(f"reached at step {reached}" in line and "near step" not in line for line in after)


class BlowsUpInWarmup(CurveModule):
    """A loss that falls, then blows up tenfold every 10 steps from step 80, while the LR still warms up (to 300)."""

    def __init__(self) -> None:
        t = np.arange(400)
        curve = np.where(t < 80, 0.3 + 0.7 / (1 + t / 10), 0.3 * 10.0 ** ((t - 80) / 10))
        super().__init__(curve=curve.tolist())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min((step + 1) / 300, 1.0))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def test_a_loss_blowing_up_in_the_lr_warmup_is_stopped_as_a_divergence(tmp_path):
    """Every step's LR rise starts the best level afresh, so the held-best rule cannot confirm a climb in a warmup: a
    loss a million times the lowest it reached, three points running, is a blow-up all the same."""
    bundle = Curvecast(early_stopping=True, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 400, logger=False)
    trainer.fit(BlowsUpInWarmup())
    request = bundle.early_stopping.stop_request
    assert request is not None
    assert request.reason is StopReason.DIVERGENCE
    assert 140 <= request.step <= 160  # 1e6 times its lowest (0.3) from step 140; scored every 8 steps on a CPU
    assert "blew up" in request.message


class SlowStartRegression(pl.LightningModule):
    """An MLP on a smooth regression task under AdamW at a constant LR: its loss falls slowly, then speeds up."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 64),
                                       torch.nn.GELU(), torch.nn.Linear(64, 1))  # fmt: skip

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=5e-4)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4096, 16, generator=g)
        y = torch.sin(x[:, :4].sum(-1)) + 0.5 * x[:, 4] * x[:, 5] + 0.1 * torch.randn(4096, generator=g)
        return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=g)


def test_a_slow_start_at_a_constant_lr_is_not_stopped_before_it_speeds_up(tmp_path):
    """Its loss falls slowly, then speeds up to end under 0.1: read as sized, the early forecasts put the target 0.1
    out of reach and stopped the run at step 407 of 960; in the first half of a run they are read twice as wide."""
    pl.seed_everything(0)
    bundle = Curvecast(target=0.1, early_stopping=True, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 960, logger=False)
    trainer.fit(SlowStartRegression())
    assert bundle.early_stopping.stop_request is None
    assert trainer.global_step == 960
    assert bundle.history.series("loss").values[-40:].mean() < 0.1  # the target, reached


def test_a_loss_climbing_slowly_as_its_objective_changes_is_warned_of_not_stopped(tmp_path):
    """A VAE's KL weight warming up from 0 to 1 lifts its loss smoothly, 1.4 -> 2.4 over 400 steps after it held its
    best: a climb that slow is an objective changing on purpose (a warning says so), not a divergence to stop on."""
    t = np.arange(900)
    fall = 1.4 + 7.0 * np.exp(-t / 20)
    warmup = np.clip((t - 150) / 400, 0.0, 1.0)
    module = CurveModule(curve=(fall + 1.0 * warmup).tolist(), noise=0.0)
    bundle = Curvecast(early_stopping=True, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 900, logger=False)
    trainer.fit(module)
    assert bundle.early_stopping.stop_request is None
    assert trainer.global_step == 900
    kinds = {(a.kind, a.severity) for r in bundle.reports for a in r.anomalies}
    assert ("divergence", "critical") not in kinds
    assert ("divergence", "warning") in kinds  # the climb is said


def test_a_fast_climb_is_still_stopped_as_a_divergence(tmp_path):
    t = np.arange(900)
    curve = np.where(t < 300, 1.4 + 7.0 * np.exp(-t / 20), (1.4 + 7.0 * np.exp(-300 / 20)) * 1.08 ** (t - 299))
    bundle = Curvecast(early_stopping=True, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 900, logger=False)
    trainer.fit(CurveModule(curve=np.minimum(curve, 1e30).tolist(), noise=0.0))
    request = bundle.early_stopping.stop_request
    assert request is not None
    assert request.reason is StopReason.DIVERGENCE
    assert request.step < 360


def test_no_stop_at_the_last_step(tmp_path):
    """A check that comes due at the run's last step saves nothing: it was a warning that the run "Stopped at step
    400 of 400 ... 0 steps saved" (an overfitting classifier whose last validation was its third check in a row)."""
    stopper = ForecastEarlyStopping(ForecastStopRule(patience=1, min_progress=0.99))
    bundle = Curvecast(forecast_budget=None, target=1.5, forecast_every=20, background=False, actuators=[stopper])
    trainer = tiny_trainer(tmp_path, [bundle], STEPS, log_every_n_steps=1)
    trainer.fit(CurveModule(STEPS))  # its floor is 2.0: the target is out of reach
    assert trainer.global_step == STEPS
    assert [r.step for r in bundle.reports if r.forecast is not None and r.step >= 0.99 * STEPS] == [STEPS - 1]
    assert stopper.stop_request is None
    assert not any("early_stop" in t for t in texts(read_events(trainer.logger.log_dir)))
