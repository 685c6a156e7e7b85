"""ForecastPruner in real Optuna studies (in memory and on SQLite): who is pruned, when, damaged records, workers."""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from curvecast.failsafe import CurvecastWarning
from curvecast.integrations.optuna import ForecastPruner
from curvecast.integrations.sweep_judge import FORECAST_ATTR, HORIZON_ATTR, SCHEDULE_ATTR

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

HORIZON = 200
STEPS = list(range(10, HORIZON + 1, 10))


def curve(floor: float, seed: int, noise: float = 0.005) -> list[float]:
    """A loss falling as a power law toward ``floor``, with a little seeded multiplicative noise."""
    rng = np.random.default_rng(seed)
    t = np.asarray(STEPS, dtype=np.float64)
    return list((floor + 2.0 * (1 + t / 20) ** -0.7) * (1 + noise * rng.standard_normal(len(t))))


def run_trial(study, values: list[float], attrs: dict | None = None) -> tuple[object, int]:
    """Report ``values`` at STEPS until the study's pruner prunes the trial; the trial told, and its last step."""
    trial = study.ask()
    for name, value in (attrs or {HORIZON_ATTR: HORIZON}).items():
        trial.set_user_attr(name, value)
    for step, value in zip(STEPS, values, strict=True):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return trial, step
    study.tell(trial, values[-1])
    return trial, STEPS[-1]


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "memory" else f"sqlite:///{tmp_path / 'study.db'}"


def test_a_clearly_worse_trial_is_pruned_early_and_a_clearly_better_one_never(storage: str | None) -> None:
    pruner = ForecastPruner()
    study = optuna.create_study(storage=storage, pruner=pruner)
    for seed, floor in enumerate((1.2, 1.21, 1.19, 1.2)):
        _, last = run_trial(study, curve(floor, seed))
        assert last == HORIZON  # as good as one another, up to the noise: none is given up on
    worse, stopped = run_trial(study, curve(2.5, 10))
    assert stopped <= 0.3 * HORIZON
    assert "finished trials" in pruner.verdicts[worse.number].reason
    better, last = run_trial(study, curve(0.8, 11))
    assert last == HORIZON
    assert study.best_trial.number == better.number
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.PRUNED) == 1


def test_one_pruner_reused_for_a_second_study_judges_its_trials_alone() -> None:
    """Trial ids restart in each in-memory storage: the first study's records (losses near 0.1) must not stand for the
    second study's trials (near 2), which are as good as one another."""
    pruner = ForecastPruner()
    first = optuna.create_study(pruner=pruner)
    for seed in range(4):
        run_trial(first, curve(0.1, seed))
    second = optuna.create_study(pruner=pruner)
    for seed, floor in enumerate((2.0, 2.01, 1.99, 2.0)):
        _, last = run_trial(second, curve(floor, 20 + seed))
        assert last == HORIZON
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in second.trials)


def test_pruning_starts_from_the_first_trials(storage: str | None) -> None:
    # One trial finished: a second one far behind it, whose own forecast cannot reach it, is pruned.
    pruner = ForecastPruner()
    study = optuna.create_study(storage=storage, pruner=pruner)
    run_trial(study, curve(1.0, 0))
    hopeless, stopped = run_trial(study, curve(4.0, 1))
    assert stopped < HORIZON
    assert "behind 100% of the 1 trials" in pruner.verdicts[hopeless.number].reason
    _, last = run_trial(study, curve(0.9, 2))  # a better one runs to its end
    assert last == HORIZON


def test_a_maximized_study_prunes_the_trial_that_trails() -> None:
    pruner = ForecastPruner()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for seed, floor in enumerate((1.2, 1.21, 1.19, 1.2)):
        run_trial(study, [-v for v in curve(floor, seed)])
    _, stopped = run_trial(study, [-v for v in curve(2.5, 10)])
    assert stopped <= 0.3 * HORIZON
    _, last = run_trial(study, [-v for v in curve(0.8, 11)])
    assert last == HORIZON


def test_a_trial_whose_value_turns_nan_is_pruned_at_once() -> None:
    study = optuna.create_study(pruner=ForecastPruner())
    values = curve(1.0, 0)
    values[3] = math.nan
    trial, stopped = run_trial(study, values)
    assert stopped == STEPS[3]
    assert trial.number == 0  # even with no other trial to compare with


def finished(values: list[float], attrs: dict) -> object:
    """A completed trial as some worker (or another tool) left it in the storage."""
    return optuna.trial.create_trial(value=1.0, intermediate_values=dict(zip(STEPS, values, strict=True)),
                                     user_attrs=attrs)  # fmt: skip


def test_damaged_records_are_skipped_one_by_one_and_pruning_goes_on(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'damaged.db'}"
    pruner = ForecastPruner()
    study = optuna.create_study(storage=storage, pruner=pruner)
    nan_values = curve(1.2, 0)
    nan_values[4] = math.nan
    nan_values[6] = math.inf
    study.add_trial(finished(nan_values, {HORIZON_ATTR: HORIZON}))  # its finite values still count
    for seed, attrs in enumerate(
        (
            {HORIZON_ATTR: math.inf},  # SQLite keeps it, and reads it back as inf
            {HORIZON_ATTR: HORIZON, SCHEDULE_ATTR: "not a schedule"},
            {HORIZON_ATTR: HORIZON, FORECAST_ATTR: {"step": 10, "quantiles": [1, 2]}},
        ),
        start=1,
    ):
        study.add_trial(finished(curve(1.2, seed), attrs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worse, stopped = run_trial(study, curve(2.5, 10))
        for name in (HORIZON_ATTR, FORECAST_ATTR):  # the trial being judged may carry damage too
            run_trial(study, curve(1.19, 11), {name: {"garbage": True}})
        better, last = run_trial(study, curve(0.8, 12))
    said = [str(w.message) for w in caught if issubclass(w.category, CurvecastWarning)]
    assert stopped <= 0.3 * HORIZON
    assert last == HORIZON
    assert pruner.verdicts[worse.number].finished == 4  # every damaged trial still counted, its damage left out
    assert [t.state for t in study.trials[5:7]] == [optuna.trial.TrialState.COMPLETE] * 2
    assert any("trial 0 has a non-finite value at step 50" in s for s in said)
    assert any("trial 1's user attribute 'curvecast_horizon' is damaged" in s for s in said)
    assert any("trial 2's user attribute 'curvecast_schedule' is damaged" in s for s in said)
    assert not any("trial 3" in s for s in said)  # another trial's forecast is never read: its damage is harmless
    assert any("trial 5's user attribute 'curvecast_horizon' is damaged" in s for s in said)
    assert any("trial 6's user attribute 'curvecast_forecast' is damaged" in s for s in said)
    assert len(said) == len(set(said)) == 5  # one warning per damaged record, not one per decision


def test_workers_on_one_sqlite_storage_lose_no_report(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'workers.db'}"
    optuna.create_study(study_name="workers", storage=storage)
    floors = [1.2, 1.25, 1.3, 1.22, 1.28, 1.21] + [2.5, 1.24, 3.0, 0.9, 2.8, 1.26]
    queue = list(enumerate(floors))
    lock = threading.Lock()
    sent: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker() -> None:
        study = optuna.load_study(study_name="workers", storage=storage, pruner=ForecastPruner())
        while True:
            with lock:
                if not queue:
                    return
                seed, floor = queue.pop(0)
            try:
                trial, last = run_trial(study, curve(floor, seed))
                with lock:
                    sent[trial.number] = STEPS.index(last) + 1
            except BaseException as error:  # noqa: BLE001 - collected: the test's check is that none happens
                errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    trials = optuna.load_study(study_name="workers", storage=storage).trials
    assert len(trials) == len(floors)
    assert {t.number: len(t.intermediate_values) for t in trials} == sent
    best = min((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
    assert best.value == pytest.approx(curve(0.9, floors.index(0.9))[-1])  # the best configuration ran to its end
    assert sum(t.state == optuna.trial.TrialState.PRUNED for t in trials) >= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.0}, r"Expected `confidence` to lie in \[0.5, 1\), but got 1.0"),
        ({"min_finished": 1}, r"Expected `min_finished` to be at least 2, but got 1"),
        ({"window": 0}, r"Expected `window` to be at least 1, but got 0"),
        ({"horizon": math.inf}, r"Expected `horizon` to be a positive number of steps or None, but got inf"),
        ({"n_warmup_steps": -1}, r"Expected `n_warmup_steps` to be at least 0, but got -1"),
    ],
)
def test_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ForecastPruner(**kwargs)


def test_a_multi_objective_study_is_never_pruned_and_says_why() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], pruner=ForecastPruner())
    study.ask()
    with pytest.warns(CurvecastWarning, match="Expected a single-objective study, but got one with 2 objectives"):
        assert study.pruner.prune(study, study.trials[0]) is False


def crossing_curve(lr: float) -> tuple[list[float], dict]:
    """A loss whose noise floor is proportional to the LR until a cosine decay takes it away: a high LR trails for
    most of the run and ends best. Returned with the trial's planned schedule, as TrialReporter stores it."""
    t = np.arange(HORIZON + 1, dtype=np.float64)
    decay = 0.5 * (1 + np.cos(np.pi * t / HORIZON))
    loss = 1.0 + 2.0 * (1 + np.cumsum(decay) * lr / 3) ** -0.7 + 1.2 * lr * decay
    knots = list(range(0, HORIZON + 1, 10))
    schedule = {"steps": knots, "lrs": [float(lr * decay[k]) for k in knots]}
    return [float(loss[s]) for s in STEPS], {HORIZON_ATTR: HORIZON, SCHEDULE_ATTR: schedule}


def test_curves_that_cross_a_high_lr_trailing_until_its_decay_is_kept() -> None:
    pruner = ForecastPruner()
    study = optuna.create_study(pruner=pruner)
    for lr in (0.1, 0.3, 0.05, 0.2, 0.15):
        run_trial(study, *crossing_curve(lr))
    values, attrs = crossing_curve(0.8)
    quarter = len(values) // 4
    assert values[quarter] > crossing_curve(0.1)[0][quarter]  # a quarter into the run it trails every finished trial
    high, last = run_trial(study, values, attrs)
    assert last == HORIZON
    assert study.best_trial.number == high.number
    _, stopped = run_trial(study, *crossing_curve(0.003))  # a far too low LR is given up on early
    assert stopped <= HORIZON // 2


def test_three_finished_trials_read_the_lr_and_give_up_on_a_far_too_low_one_at_once() -> None:
    """Three finished trials of the crossing family, with their planned LRs: their finals are their levels plus a
    gain that grows with the LR (their slope on the level held at 1: three trials leave no residual for a fitted one).
    A far too low LR, under all of theirs, is stopped at its first report on that prediction (before, the LR column
    waited for a fourth finished trial and the trial for its own forecast, until step 40); a high LR above all of
    theirs, trailing until its decay, is predicted a larger gain and runs to its end, the best trial."""
    pruner = ForecastPruner()
    study = optuna.create_study(pruner=pruner)
    for lr in (0.05, 0.1, 0.2):
        run_trial(study, *crossing_curve(lr))
    low, stopped = run_trial(study, *crossing_curve(0.003))
    assert stopped == STEPS[0]
    assert "levels and LRs" in pruner.verdicts[low.number].reason
    high, last = run_trial(study, *crossing_curve(0.8))
    assert last == HORIZON
    assert study.best_trial.number == high.number


def test_at_one_level_a_trial_turning_back_is_pruned_before_one_still_climbing(storage: str | None) -> None:
    """Finished trials of a maximized study: three still climbing at their end, three that rose fast and turned back
    (overfitting). Mid-run their levels cross, so the level alone says little; where each was heading (its trend over
    the reports before) tells them apart. A new trial turning back is pruned by step 170 (130 before its own forecast's
    spread read every member on a held-back tail of three points, `hypotheses.spread_alternatives`; 160 then without
    the trend), a new one climbing to the best final runs to its end."""
    t = np.asarray(STEPS, dtype=np.float64)

    def climbing(end: float, seed: int) -> list[float]:
        noise = 0.003 * np.random.default_rng(seed).standard_normal(len(t))
        return list(end - 0.5 * np.exp(-t / 70) + noise)

    def turning(peak: float, seed: int) -> list[float]:
        noise = 0.003 * np.random.default_rng(seed).standard_normal(len(t))
        return list(peak - 0.6 * np.exp(-t / 15) - 0.25 * (t / HORIZON) ** 2 + noise)

    pruner = ForecastPruner()
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    for seed, (kind, level) in enumerate(
        [(climbing, 0.9), (turning, 0.93), (climbing, 0.89), (turning, 0.94), (climbing, 0.91), (turning, 0.92)]
    ):
        values = kind(level, seed)
        reports = dict(zip(STEPS, values, strict=True))
        study.add_trial(optuna.trial.create_trial(value=values[-1], intermediate_values=reports,
                                                  user_attrs={HORIZON_ATTR: HORIZON}))  # fmt: skip
    turner, stopped = run_trial(study, turning(0.93, 10))
    assert stopped <= 170
    assert "trends" in pruner.verdicts[turner.number].reason
    _, last = run_trial(study, climbing(0.905, 11))
    assert last == HORIZON
