"""`Curvecast(references=...)`: finished runs of the recipe, from a log directory, an Optuna study or a list."""

import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.forecasting import Reference
from curvecast.live.reference_source import study_references
from curvecast.logreaders.reference_runs import MIN_FINISHED, references_from_logs
from run_helpers import tiny_trainer
from tiny_models import TinyRegression, loader

STEPS = 64  # 8 epochs of 8 batches


def _fit(tmp_path: Path, logger, curvecast: Curvecast, steps: int = STEPS, val: bool = False) -> Curvecast:
    validation = {"val_check_interval": 8, "check_val_every_n_epoch": None} if val else {}
    pl.seed_everything(0, verbose=False)
    trainer = tiny_trainer(tmp_path, [curvecast], steps, logger=logger, **validation)
    trainer.fit(TinyRegression(lr=0.02), loader(256, 32), loader(256, 32, seed=1) if val else None)
    return curvecast


def _watch(**kwargs) -> Curvecast:
    """A bundle forecasting inline as each batch of losses reaches the host (after steps 7, 15, ...: every 8 steps on
    one CPU), nothing but the forecast."""
    return Curvecast(forecast_every=4, background=False, forecast_budget=None, gradient_noise=False,
                     throughput=False, advice=False, log_forecasts=False, **kwargs)  # fmt: skip


def test_finished_runs_in_the_log_directory_inform_the_forecast_and_the_live_run_is_not_its_own(tmp_path):
    root = tmp_path / "logs"
    finished = [_fit(tmp_path, TensorBoardLogger(root, name="recipe"), _watch()) for _ in range(2)]
    series = finished[0].history.series("loss")
    # The loss still falls fast at the end: its final level is a log-linear fit of the last epoch, read at the end.
    slope, level = np.polyfit(series.steps[-8:], np.log(series.values[-8:]), 1)
    truth = float(np.exp(level + slope * series.steps[-1]))

    alone = _fit(tmp_path, TensorBoardLogger(root, name="recipe"), _watch(), steps=STEPS)
    live = _fit(tmp_path, TensorBoardLogger(root, name="recipe"), _watch(references=root), steps=STEPS)

    # The three runs written before it, never the live run's own version_3.
    assert len(live.cadence.references) == 3
    early = [r for r in live.reports if r.forecast is not None and r.forecast.ok and r.step <= STEPS // 4]
    assert early, "no forecast in the first quarter of the run"
    alone_at = {r.step: r.forecast for r in alone.reports if r.forecast is not None}
    # Same recipe, same data order: the references know where the run ends; the prefix alone cannot (it is too
    # uncertain to forecast at all, or forecasts worse), at every forecast of the first quarter.
    for report in early:
        assert "reference" in report.forecast.model
        error = abs(report.forecast.final / truth - 1)
        assert not alone_at[report.step].ok or error < abs(alone_at[report.step].final / truth - 1)
    # By a quarter of the run the references have pinned the final loss; an eighth in, on a handful of points past
    # the transient, the forecast is closer than alone but still says it is unsure.
    assert early[-1].step + 1 == STEPS // 4  # steps 0..15: the losses reach the host every 8 steps on one CPU
    assert abs(early[-1].forecast.final / truth - 1) < 0.1
    assert early[0].forecast.log_scale > early[-1].forecast.log_scale


def test_a_csv_logged_validation_metric_is_read_as_a_reference(tmp_path):
    root = tmp_path / "csv"
    _fit(tmp_path, CSVLogger(root, name="recipe"), _watch(monitor="val_loss"), val=True)
    found = references_from_logs(root, "val_loss")
    assert len(found.references) == 1
    ref = found.references[0]
    assert ref.steps[-1] == STEPS - 1
    assert len(ref.steps) == STEPS // 8

    live = _fit(tmp_path, CSVLogger(root, name="recipe"), _watch(monitor="val_loss", references=root),
                val=True)  # fmt: skip
    assert len(live.cadence.references) == 1


def test_runs_that_ended_early_or_log_something_else_are_left_out_with_the_reason(tmp_path):
    root = tmp_path / "logs"
    _fit(tmp_path, TensorBoardLogger(root, name="full"), _watch())
    _fit(tmp_path, TensorBoardLogger(root, name="cut"), _watch(), steps=int(STEPS * MIN_FINISHED) - 8)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(root / "stopped") as writer:  # a run curvecast stopped: however long, not finished
        for step in range(STEPS):
            writer.add_scalar("curvecast/loss", 1.0 / (1 + step), step)
        writer.add_scalar("curvecast/early_stopping/stopped", 1.0, 50)
    (root / "notes").mkdir()
    (root / "notes" / "metrics.csv").write_text("step,accuracy\n" + "".join(f"{i},0.{i}\n" for i in range(9)))

    found = references_from_logs(root, "loss")

    assert len(found.references) == 1
    reasons = "\n".join(found.skipped)
    assert "cut" in reasons
    assert "before 50% of the longest run" in reasons
    assert "notes: no training loss is logged, only `accuracy`" in reasons
    assert "stopped: stopped early by curvecast at step 50" in reasons


@pytest.mark.parametrize("make", [True, False])
def test_an_empty_or_missing_reference_directory_is_one_warning_and_the_run_goes_on(tmp_path, make):
    if make:
        (tmp_path / "runs").mkdir()
    why = "" if make else ".*does not exist"
    with pytest.warns(CurvecastWarning, match="no reference run of `loss` found" + why):
        live = _fit(tmp_path, False, _watch(references=tmp_path / "runs"))
    assert live.cadence.references == ()
    assert live.last_report is not None
    assert live.last_report.forecast.ok


def test_the_completed_trials_of_a_study_are_references(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")

    def objective(trial) -> float:
        for step in range(0, 40, 4):
            trial.report(1.0 / (1 + step) + trial.number, step)
        if trial.number == 2:
            raise optuna.TrialPruned()
        return 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=3)

    references, skipped = study_references(study, "val_loss", "min")
    assert len(references) == 2  # the pruned trial is no finished run
    assert references[1].values[0] == pytest.approx(2.0)  # trial 1's own reported curve
    # A study maximizing something else than a falling monitor has no reported curve to offer it.
    assert study_references(study, "val_loss", "max")[0] == []
    assert "no curve of `val_loss`" in study_references(study, "val_loss", "max")[1][0]
    # A trial's bundle reads them at the start of its fit.
    assert len(_fit(tmp_path, False, _watch(references=study)).cadence.references) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"references": __file__}, ValueError, "Expected `references` to be a directory of finished runs"),
        ({"references": 42}, TypeError, "Expected `references` to be a log directory, a list of `Reference`"),
        ({"references": [1.0]}, ValueError, "Expected `references` to hold `Reference` objects, but got float"),
        ({"bounds": (1.0, 0.0)}, ValueError, r"`bounds` must satisfy lo < hi"),
    ],
)
def test_bad_references_or_bounds_are_refused_up_front(kwargs, error, message):
    with pytest.raises(error, match=message):
        Curvecast(**kwargs)


def test_reference_objects_and_bounds_reach_the_forecast(tmp_path):
    steps = np.arange(STEPS, dtype=np.float64)
    reference = Reference(steps, 0.2 + 5.0 / (1 + steps))
    live = _fit(tmp_path, False, _watch(references=[reference], bounds=(0.0, None)))
    assert live.cadence.references == (reference,)
    forecasts = [r.forecast for r in live.reports if r.forecast is not None and r.forecast.ok]
    assert forecasts
    assert all(f.interval(0.8)[0] >= 0.0 for f in forecasts)


def test_the_live_run_does_not_read_its_own_logs(tmp_path: Path):
    root = tmp_path / "logs"
    live = _fit(tmp_path, TensorBoardLogger(root, name="recipe"), _watch(references=root))
    assert live.cadence.references == ()  # only its own version_0 was there


def test_references_of_other_recipes_widen_the_interval_by_their_disagreement(tmp_path):
    """A log directory holds what a user ran before: two runs of this recipe and two of a ten times slower LR, whose
    loss ends far higher. The median over the four shapes lies between the recipes; it was forecast with an interval
    as narrow as one recipe's, and missed where this run ends. The references' spread now widens it."""
    root = tmp_path / "logs"
    for lr in (0.02, 0.02, 0.002, 0.002):
        pl.seed_everything(0, verbose=False)
        tiny_trainer(tmp_path, [_watch()], STEPS, logger=TensorBoardLogger(root, name=f"lr{lr}")).fit(
            TinyRegression(lr=lr), loader(256, 32)
        )
    own = _fit(tmp_path / "own", False, _watch(references=root / "lr0.02"))
    mixed = _fit(tmp_path / "mixed", False, _watch(references=root))
    assert len(mixed.cadence.references) == 4
    series = own.history.series("loss")
    slope, level = np.polyfit(series.steps[-8:], np.log(series.values[-8:]), 1)
    truth = float(np.exp(level + slope * series.steps[-1]))
    own_at = {r.step: r.forecast for r in own.reports if r.forecast is not None and r.forecast.ok}
    judged = [r for r in mixed.reports if r.forecast is not None and r.forecast.ok and "reference" in r.forecast.model]
    assert judged
    for report in judged:
        lo, hi = report.forecast.interval(0.8)
        assert lo <= truth <= hi, (report.step, lo, hi, truth)
    # Once past the first looks (too few points for either to be sure), the run's own recipe agrees with itself and
    # its interval is the narrower: 0.35-0.39 against 1.7-2.1 in log scale from step 23 on.
    later = [r for r in judged if r.step >= 23 and r.step in own_at]
    assert later
    assert all(own_at[r.step].log_scale < 0.5 * r.forecast.log_scale for r in later)
