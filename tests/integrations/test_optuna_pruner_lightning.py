"""TrialReporter beside the Curvecast bundle, in a real Optuna study pruned by ForecastPruner: real Lightning runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from curvecast import Curvecast
from curvecast.integrations.optuna import PRUNED_ATTR, ForecastPruner, TrialReporter
from curvecast.integrations.sweep_judge import FORECAST_ATTR, HORIZON_ATTR, SCHEDULE_ATTR
from run_helpers import tiny_trainer
from tiny_models import TinyRegression, regression_data

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

MAX_STEPS = 120
VAL_EVERY = 10


class CosineRegression(TinyRegression):
    """The tiny linear regression under SGD with a per-step cosine decay to zero over the run."""

    def __init__(self, lr: float) -> None:
        torch.manual_seed(0)
        super().__init__(lr=lr)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=MAX_STEPS)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}


def _objective(tmp_path: Path, reporters: list[TrialReporter], budget: float | None = None):
    train = DataLoader(regression_data(256, seed=0), batch_size=16, shuffle=False)
    val = DataLoader(regression_data(256, seed=1), batch_size=256)

    def objective(trial) -> float:
        bundle = Curvecast(monitor="val_loss", background=False, forecast_budget=budget, gradient_noise=False,
                           throughput=False, advice=False, tensorboard=False, log_forecasts=False)  # fmt: skip
        reporter = TrialReporter(trial)
        reporters.append(reporter)
        trainer = tiny_trainer(tmp_path, [bundle, reporter], MAX_STEPS, logger=False,
                               val_check_interval=VAL_EVERY, check_val_every_n_epoch=None)  # fmt: skip
        trainer.fit(CosineRegression(trial.suggest_float("lr", 1e-6, 1.0, log=True)), train, val)
        return float(trainer.callback_metrics["val_loss"])

    return objective


@pytest.mark.slow
def test_the_bundle_reports_to_the_trial_and_a_hopeless_trial_is_pruned(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = optuna.create_study(storage=storage, direction="minimize", pruner=ForecastPruner())
    for lr in (0.02, 0.05, 0.03, 1e-5, 0.04):  # three good ones finish; a hopeless one; a good one again
        study.enqueue_trial({"lr": lr})
    reporters: list[TrialReporter] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        study.optimize(_objective(tmp_path, reporters), n_trials=5)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.PRUNED,
                                                                optuna.trial.TrialState.COMPLETE]  # fmt: skip
    first, hopeless, last = study.trials[0], study.trials[3], study.trials[4]
    # Every validation reached the trial, at its optimizer step, once: one history, no lost report.
    assert sorted(first.intermediate_values) == list(range(VAL_EVERY, MAX_STEPS + 1, VAL_EVERY))
    assert reporters[0].reported == sorted(first.intermediate_values)
    assert first.value == pytest.approx(first.intermediate_values[MAX_STEPS])
    # What the pruner cannot know, kept by the live run: the horizon, the planned schedule and the forecast.
    assert first.user_attrs[HORIZON_ATTR] == MAX_STEPS
    schedule = first.user_attrs[SCHEDULE_ATTR]
    assert (schedule["steps"][0], schedule["steps"][-1]) == (0, MAX_STEPS)
    assert schedule["lrs"][0] == pytest.approx(0.02)
    assert schedule["lrs"][-1] == pytest.approx(0.0, abs=1e-9)
    forecast = first.user_attrs[FORECAST_ATTR]
    assert forecast["step"] in first.intermediate_values
    assert len(forecast["quantiles"]) == 7
    # The hopeless trial stopped early, with the pruner's reason kept in the study's storage.
    assert max(hopeless.intermediate_values) < MAX_STEPS // 2
    assert hopeless.user_attrs[PRUNED_ATTR].startswith(f"Trial was pruned at step {max(hopeless.intermediate_values)}")
    assert "behind" in hopeless.user_attrs[PRUNED_ATTR] or "finished trials" in hopeless.user_attrs[PRUNED_ATTR]
    assert max(last.intermediate_values) == MAX_STEPS


def test_a_monitor_other_than_the_bundles_or_a_direction_against_the_study_is_refused(tmp_path: Path) -> None:
    trial = optuna.create_study(direction="minimize").ask()
    for bundle, message in (
        (Curvecast(monitor="val_loss", tensorboard=False), r"TrialReporter\(monitor='val_acc'\) reports Curvecast's"),
        (Curvecast(monitor="val_acc", tensorboard=False), r"Expected Curvecast's mode for 'val_acc' to match"),
    ):
        with pytest.raises(ValueError, match=message):
            bundle.attach(TrialReporter(trial, monitor="val_acc" if "reports" in message else None))


def test_a_multi_objective_study_is_refused() -> None:
    trial = optuna.create_study(directions=["minimize", "maximize"]).ask()
    with pytest.raises(ValueError, match=r"Expected a single-objective study, but got one with 2 objectives"):
        TrialReporter(trial)


@pytest.mark.slow
def test_with_the_default_budget_every_validation_still_reaches_the_trial(tmp_path: Path) -> None:
    """These runs are too short for the default forecast budget to allow a forecast before their end: each
    validation still brings a report, so the trial hears of every one and the hopeless trial is pruned all the same."""
    study = optuna.create_study(direction="minimize", pruner=ForecastPruner())
    for lr in (0.02, 0.05, 0.03, 1e-5):
        study.enqueue_trial({"lr": lr})
    reporters: list[TrialReporter] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        study.optimize(_objective(tmp_path, reporters, budget=0.1), n_trials=4)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.PRUNED]
    assert sorted(study.trials[0].intermediate_values) == list(range(VAL_EVERY, MAX_STEPS + 1, VAL_EVERY))


class NanValidation(CosineRegression):
    """Its validation loss turns NaN from step ``NAN_FROM`` on (the training goes on as before)."""

    NAN_FROM = 45

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("val_loss", loss * float("nan") if self.global_step >= self.NAN_FROM else loss)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_trial_turning_nan_reports_the_nan_and_ends_pruned(tmp_path: Path, early_stopping: bool) -> None:
    """The trial sees NaN at the steps that logged it (not the last finite value again), and ends pruned: by the
    study's pruner at the first NaN, or by early stopping's stop on it, rather than complete with a NaN or inf."""
    train = DataLoader(regression_data(256, seed=0), batch_size=16, shuffle=False)
    val = DataLoader(regression_data(256, seed=1), batch_size=256)
    reporters: list[TrialReporter] = []

    def objective(trial) -> float:
        bundle = Curvecast(monitor="val_loss", background=False, forecast_budget=None, gradient_noise=False,
                           throughput=False, advice=False, tensorboard=False, log_forecasts=False,
                           early_stopping=early_stopping)  # fmt: skip
        reporters.append(TrialReporter(trial))
        trainer = tiny_trainer(tmp_path, [bundle, reporters[-1]], MAX_STEPS, logger=False,
                               val_check_interval=VAL_EVERY, check_val_every_n_epoch=None)  # fmt: skip
        trainer.fit(NanValidation(0.02), train, val)
        return float(trainer.callback_metrics["val_loss"])

    study = optuna.create_study(direction="minimize", pruner=ForecastPruner())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    values = trial.intermediate_values
    assert max(values) == 50  # the first validation at or past NAN_FROM: pruned, or stopped, there
    assert all(v == v for step, v in values.items() if step < NanValidation.NAN_FROM)
    assert values[50] != values[50]  # NaN, as logged: not the last finite value reported again
    assert "nan" in trial.user_attrs[PRUNED_ATTR].lower() or "diverged" in trial.user_attrs[PRUNED_ATTR]
