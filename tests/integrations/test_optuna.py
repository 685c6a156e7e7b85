"""ForecastPruningCallback: a real study of tiny Lightning trials, the DDP decision path, errors and state."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from curvecast.integrations.optuna import CURVE_ATTR, FINAL_ATTR, PRUNED_ATTR, ForecastPruningCallback
from run_helpers import tiny_trainer

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)
# The callback is deprecated (see test_the_callback_says_it_is_deprecated); its behaviour is still held here.
pytestmark = pytest.mark.filterwarnings("ignore:ForecastPruningCallback is deprecated:DeprecationWarning")

MAX_STEPS = 120


class Regression(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)
        self.lr = lr

    def _loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _data(seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=generator)
    return TensorDataset(x, x @ torch.arange(1.0, 5.0) + 0.1 * torch.randn(256, generator=generator))


def _study_trainer(tmp_path: Path, pruning: ForecastPruningCallback, sanity_steps: int = 0) -> pl.Trainer:
    """A quiet CPU Trainer of MAX_STEPS steps validating every 10 steps, with the trial's pruning callback."""
    return tiny_trainer(tmp_path, [pruning], MAX_STEPS, logger=False, num_sanity_val_steps=sanity_steps,
                        val_check_interval=10, check_val_every_n_epoch=None)  # fmt: skip


def _study_of(direction: str, lrs: tuple[float, ...], objective) -> optuna.Study:
    """A study (no Optuna pruner) that runs ``objective`` once per LR of ``lrs``, in that order."""
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.NopPruner())
    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        study.optimize(objective, n_trials=len(lrs))
    return study


def test_study_prunes_a_hopeless_trial_and_keeps_a_good_one(tmp_path: Path) -> None:
    train, val = DataLoader(_data(0), batch_size=16, shuffle=False), DataLoader(_data(1), batch_size=256)

    def objective(trial) -> float:
        pruning = ForecastPruningCallback(trial, monitor="val_loss", min_points=5)
        trainer = _study_trainer(tmp_path, pruning, sanity_steps=2)
        trainer.fit(Regression(trial.suggest_float("lr", 1e-6, 1.0, log=True)), train, val)
        pruning.check_pruned()
        return float(trainer.callback_metrics["val_loss"])

    study = _study_of("minimize", (0.003, 1e-5, 0.05), objective)  # slow but fine, hopeless, good
    first, hopeless, good = study.trials
    assert [t.state for t in study.trials] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.COMPLETE,
    ]
    assert first.user_attrs[FINAL_ATTR]["val_loss"] == pytest.approx(first.value)
    assert max(hopeless.intermediate_values) < MAX_STEPS  # stopped early, after min_points validations
    assert len(hopeless.intermediate_values) >= 4
    assert "is forecast to end at" in hopeless.user_attrs[PRUNED_ATTR]
    curve = first.user_attrs[CURVE_ATTR]  # what later trials are forecast against
    assert curve["monitor"] == "val_loss"
    assert curve["horizon"] == MAX_STEPS
    assert curve["steps"] == sorted(first.intermediate_values)
    assert curve["values"] == pytest.approx([first.intermediate_values[s] for s in curve["steps"]])
    assert CURVE_ATTR not in hopeless.user_attrs
    assert good.value < first.value
    assert len(good.intermediate_values) == MAX_STEPS // 10
    assert 0 not in first.intermediate_values  # the sanity check is not reported


class FakeStrategy:
    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.sent: list[object] = []

    def broadcast(self, obj, src=0):
        self.sent.append(obj)
        return obj if self.reply is None else self.reply


def _trainer(step: int, value: float, rank_zero: bool, strategy: FakeStrategy) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=False,
        callback_metrics={"val_loss": torch.tensor(value)},
        global_step=step,
        is_global_zero=rank_zero,
        world_size=2,
        strategy=strategy,
        should_stop=False,
        max_steps=1000,
    )


def _study_with_a_finished_trial(final: float):
    study = optuna.create_study(direction="minimize")
    study.add_trial(optuna.trial.create_trial(value=final, user_attrs={FINAL_ATTR: {"val_loss": final}}))
    return study


def test_ddp_rank_zero_decides_and_every_rank_stops() -> None:
    study = _study_with_a_finished_trial(0.1)
    trial = study.ask()
    callback = ForecastPruningCallback(trial, monitor="val_loss", use_pruner=False)
    strategy = FakeStrategy()
    trainer = _trainer(0, 0.0, True, strategy)
    callback.on_fit_start(trainer, None)
    for index in range(8):  # a curve levelling off near 2.0, far above the best trial's 0.1
        trainer.global_step, trainer.callback_metrics = (
            (index + 1) * 20,
            {"val_loss": torch.tensor(2.0 + 1 / (1 + index))},
        )
        callback.on_validation_end(trainer, None)  # under DDP: no exception from the hook
        if trainer.should_stop:
            break
    assert trainer.should_stop
    assert strategy.sent[-1] == callback.pruned_reason
    assert "above the best trial's 0.1" in callback.pruned_reason
    assert all(sent is None for sent in strategy.sent[:-1])
    assert trial.user_attrs[PRUNED_ATTR] == callback.pruned_reason
    fresh = ForecastPruningCallback(trial, monitor="val_loss")  # as in the main process of ddp_spawn
    with pytest.raises(optuna.TrialPruned, match="is forecast to end at"):
        fresh.check_pruned()


def test_ddp_other_rank_follows_the_broadcast() -> None:
    trial = _study_with_a_finished_trial(0.1).ask()
    callback = ForecastPruningCallback(trial, monitor="val_loss")
    trainer = _trainer(10, 5.0, False, FakeStrategy(reply="pruned by rank 0"))
    callback.on_fit_start(trainer, None)
    callback.on_validation_end(trainer, None)
    assert trainer.should_stop
    assert trial.user_attrs == {}  # only rank 0 writes to the trial
    assert dict(trial.study.trials[-1].intermediate_values) == {}
    with pytest.raises(optuna.TrialPruned, match="pruned by rank 0"):
        callback.check_pruned()


def test_no_prune_without_a_finished_trial_and_check_pruned_is_quiet() -> None:
    trial = optuna.create_study().ask()
    callback = ForecastPruningCallback(trial, monitor="val_loss", use_pruner=False)
    trainer = _trainer(0, 0.0, True, FakeStrategy())
    trainer.world_size = 1
    callback.on_fit_start(trainer, None)
    for index in range(8):
        trainer.global_step, trainer.callback_metrics = (index + 1) * 10, {"val_loss": torch.tensor(9.0)}
        callback.on_validation_end(trainer, None)
    assert not trainer.should_stop
    assert trial.study.trials[-1].intermediate_values == {10 * (i + 1): 9.0 for i in range(8)}
    callback.check_pruned()


def test_missing_monitor_warns_and_sanity_check_is_skipped() -> None:
    trial = optuna.create_study().ask()
    callback = ForecastPruningCallback(trial, monitor="val_acc_never_logged")
    trainer = _trainer(5, 1.0, True, FakeStrategy())
    trainer.sanity_checking = True
    callback.on_validation_end(trainer, None)
    trainer.sanity_checking = False
    with pytest.warns(UserWarning, match=r"Expected `val_acc_never_logged` among the logged metrics, but got"):
        callback.on_validation_end(trainer, None)
    assert callback.steps == []


def test_state_dict_round_trip() -> None:
    trial = optuna.create_study().ask()
    callback = ForecastPruningCallback(trial)
    callback.steps, callback.values = [10, 20], [3.0, 2.5]
    restored = ForecastPruningCallback(trial)
    restored.load_state_dict(callback.state_dict())
    assert (restored.steps, restored.values) == ([10, 20], [3.0, 2.5])
    assert callback.state_key == "ForecastPruningCallback[monitor=val_loss]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.0}, r"Expected `confidence` to lie in \[0.5, 1\), but got 1.0"),
        ({"min_points": 2}, r"Expected `min_points` to be at least 3, but got 2"),
        ({"horizon": 0}, r"Expected `horizon` to be a positive number of steps or None, but got 0"),
    ],
)
def test_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ForecastPruningCallback(optuna.create_study().ask(), **kwargs)


def test_multi_objective_study_is_refused() -> None:
    trial = optuna.create_study(directions=["minimize", "maximize"]).ask()
    with pytest.raises(ValueError, match=r"Expected a single-objective study, but got one with 2 objectives"):
        ForecastPruningCallback(trial)


def test_install_hint_without_optuna(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # importing it now fails as if it were not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install curvecast\[optuna\]"):
        ForecastPruningCallback(SimpleNamespace())


class CosineRegression(Regression):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=MAX_STEPS)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}


def test_the_planned_lr_schedule_is_kept_with_the_curve_and_quoted(tmp_path: Path) -> None:
    train, val = DataLoader(_data(0), batch_size=16, shuffle=False), DataLoader(_data(1), batch_size=256)

    def objective(trial) -> float:
        pruning = ForecastPruningCallback(trial, monitor="val_loss", use_pruner=False)
        trainer = _study_trainer(tmp_path, pruning)
        trainer.fit(CosineRegression(trial.suggest_float("lr", 1e-6, 1.0, log=True)), train, val)
        pruning.check_pruned()
        return float(trainer.callback_metrics["val_loss"])

    study = _study_of("minimize", (0.05, 1e-5), objective)  # good, hopeless
    good, hopeless = study.trials
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert "LR schedule" in hopeless.user_attrs[PRUNED_ATTR]
    curve = good.user_attrs[CURVE_ATTR]
    # A curve keeps its LRs only where the run's schedule was known and planned to the forecast's horizon.
    assert curve["horizon"] == MAX_STEPS
    assert "lrs" in curve
    assert (curve["lr_steps"][0], curve["lr_steps"][-1]) == (0, MAX_STEPS)
    lrs = dict(zip(curve["lr_steps"], curve["lrs"], strict=True))
    assert lrs[0] == pytest.approx(0.05)
    assert lrs[MAX_STEPS // 2] == pytest.approx(0.025, rel=1e-3)  # the cosine's midpoint
    assert lrs[MAX_STEPS] == pytest.approx(0.0, abs=1e-9)


class Score(Regression):
    def validation_step(self, batch, batch_idx):
        self.log("val_score", -self._loss(batch))  # higher is better


def test_a_maximized_study_prunes_a_hopeless_trial_and_keeps_a_good_one(tmp_path: Path) -> None:
    train, val = DataLoader(_data(0), batch_size=16, shuffle=False), DataLoader(_data(1), batch_size=256)

    def objective(trial) -> float:
        pruning = ForecastPruningCallback(trial, monitor="val_score", use_pruner=False)
        trainer = _study_trainer(tmp_path, pruning)
        trainer.fit(Score(trial.suggest_float("lr", 1e-6, 1.0, log=True)), train, val)
        pruning.check_pruned()
        return float(trainer.callback_metrics["val_score"])

    study = _study_of("maximize", (0.05, 1e-5, 0.06), objective)  # good, hopeless, good
    first, hopeless, good = study.trials
    assert [t.state for t in study.trials] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.COMPLETE,
    ]
    assert "below the best trial's" in hopeless.user_attrs[PRUNED_ATTR]
    assert max(hopeless.intermediate_values) < MAX_STEPS // 2


@pytest.mark.parametrize(("last_step", "kept"), [(1000, True), (300, False)])
def test_only_a_curve_that_reached_its_horizon_is_kept_as_a_reference(last_step: int, kept: bool) -> None:
    trial = optuna.create_study().ask()
    callback = ForecastPruningCallback(trial, monitor="val_loss", use_pruner=False)
    trainer = _trainer(0, 0.0, True, FakeStrategy())
    trainer.world_size = 1
    callback.on_fit_start(trainer, None)  # horizon: max_steps = 1000
    for step in range(100, last_step + 1, 100):
        trainer.global_step, trainer.callback_metrics = step, {"val_loss": torch.tensor(1.0 + 100 / step)}
        callback.on_validation_end(trainer, None)
    callback.on_train_end(trainer, None)
    assert trial.user_attrs[FINAL_ATTR] == {"val_loss": pytest.approx(1.0 + 100 / last_step)}
    assert (CURVE_ATTR in trial.user_attrs) is kept
    if kept:
        assert trial.user_attrs[CURVE_ATTR]["steps"] == list(range(100, 1001, 100))
        assert "lrs" not in trial.user_attrs[CURVE_ATTR]  # the schedule was never replayed: unknown


def test_a_trial_the_finished_trials_record_still_gives_a_chance_is_not_pruned() -> None:
    # Two finished trials stood near 2.2 at this point of their runs and ended at 0.1: they crossed every plateau.
    study = optuna.create_study(direction="minimize")
    steps = list(range(20, 1001, 20))
    for late in (0.1, 0.12):
        values = [2.0 + 1 / (1 + i) if s <= 600 else late for i, s in enumerate(steps)]
        attrs = {FINAL_ATTR: {"val_loss": late}, CURVE_ATTR: {"monitor": "val_loss", "horizon": 1000}}
        attrs[CURVE_ATTR].update(steps=steps, values=values)
        study.add_trial(optuna.trial.create_trial(value=late, user_attrs=attrs))
    for references, pruned in ((True, False), (False, True)):
        trial = study.ask()
        callback = ForecastPruningCallback(trial, monitor="val_loss", use_pruner=False, references=references)
        trainer = _trainer(0, 0.0, True, FakeStrategy())
        callback.on_fit_start(trainer, None)
        for index in range(8):  # the same plateau near 2.0: its own forecast gives up on it
            trainer.global_step = (index + 1) * 20
            trainer.callback_metrics = {"val_loss": torch.tensor(2.0 + 1 / (1 + index))}
            callback.on_validation_end(trainer, None)
        assert trainer.should_stop is pruned


@pytest.mark.filterwarnings("default")
def test_the_callback_says_it_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match=r"use Curvecast\(monitor=...\) with TrialReporter\(trial\)"):
        ForecastPruningCallback(optuna.create_study().ask())


def test_a_finished_trial_with_an_infinite_horizon_does_not_turn_pruning_off() -> None:
    # SQLite keeps a horizon of inf; reading it back once raised for every later trial, and no trial was pruned.
    study = _study_with_a_finished_trial(0.1)
    steps = list(range(20, 1001, 20))
    attrs = {FINAL_ATTR: {"val_loss": 0.1}, CURVE_ATTR: {"monitor": "val_loss", "horizon": float("inf")}}
    attrs[CURVE_ATTR].update(steps=steps, values=[2.0 / (1 + i) for i in range(len(steps))])
    study.add_trial(optuna.trial.create_trial(value=0.1, user_attrs=attrs))
    trial = study.ask()
    callback = ForecastPruningCallback(trial, monitor="val_loss", use_pruner=False)
    trainer = _trainer(0, 0.0, True, FakeStrategy())
    trainer.world_size = 1
    callback.on_fit_start(trainer, None)

    def validate_on_a_plateau() -> None:
        for index in range(8):  # a plateau near 2.0, far above the best trial's 0.1
            trainer.global_step, trainer.callback_metrics = (index + 1) * 20, {"val_loss": torch.tensor(2.0)}
            callback.on_validation_end(trainer, None)

    with pytest.raises(optuna.TrialPruned, match="is forecast to end at"):
        validate_on_a_plateau()
    assert callback.completed_curves() == []  # the damaged curve is left out, not the decision
