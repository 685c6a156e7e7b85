"""The population rule's prediction of a trial's final from the finished trials: its intervals cover what they say."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t

from curvecast.forecasting.population import PopulationRule, TrialPath
from curvecast.forecasting.schedule import LRSchedule


@pytest.mark.parametrize(("n", "k"), [(4, 1), (5, 2), (8, 2)])
def test_the_predictive_interval_of_a_final_covers_as_often_as_it_says(n: int, k: int) -> None:
    """Finals linear in the level (and a second column, as the planned LR) with Gaussian scatter: the central 80%
    interval of the prediction for a new trial holds its final in 80% of draws, with as few as 4 finished trials
    (counting the fit's own uncertainty twice, as squared leave-one-out residuals times ``1 + h0`` did, covers 88-92%).
    """
    rng = np.random.default_rng(n * 10 + k)
    columns = rng.normal(size=(n, k))
    columns -= columns.mean(axis=0)
    own = 0.5 * rng.normal(size=k)
    beta = np.array([1.0] + [0.5] * (k - 1))  # a level's slope of 1: inside the [0, 1.5] the rule fits freely
    draws, hits = 2000, 0
    for _ in range(draws):
        finals = columns @ beta + 0.1 * rng.standard_normal(n)
        new = own @ beta + 0.1 * rng.standard_normal()
        predicted, scale, df = PopulationRule._predict(columns, finals, own)
        assert df == n - k - 1
        hits += abs(new - predicted) / scale < student_t.ppf(0.9, df)
    assert 0.76 <= hits / draws <= 0.84


def test_the_prediction_is_the_least_squares_one() -> None:
    columns = np.array([[-1.5], [-0.5], [0.5], [1.5]])
    finals = np.array([1.0, 2.1, 2.9, 4.0])
    predicted, _, _ = PopulationRule._predict(columns, finals, np.array([3.0]))
    slope, intercept = np.polyfit(columns[:, 0], finals, 1)
    assert predicted == pytest.approx(intercept + 3.0 * slope)


def test_too_few_finished_trials_for_the_columns_say_nothing() -> None:
    """Two trials, a level and an LR column: even with the level's slope held at 1, no residual is left."""
    columns = np.array([[-0.5, 0.2], [0.5, -0.2]])
    _, scale, _ = PopulationRule._predict(columns, np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    assert scale == np.inf


def test_as_many_trials_as_coefficients_hold_the_level_slope_at_one_and_cover_as_they_say() -> None:
    """Three finished trials, a level and an LR column: a free fit has no residual left, so the level's slope is held
    at 1 and the LR's effect on the gain is fitted, with one degree of freedom. Where finals are the level plus a gain
    linear in the LR, the 80% interval holds a new trial's final in 80% of draws."""
    rng = np.random.default_rng(7)
    columns = rng.normal(size=(3, 2))
    columns -= columns.mean(axis=0)
    own = 0.5 * rng.normal(size=2)
    draws, hits = 4000, 0
    for _ in range(draws):
        finals = columns[:, 0] + 0.5 * columns[:, 1] + 0.1 * rng.standard_normal(3)
        new = own[0] + 0.5 * own[1] + 0.1 * rng.standard_normal()
        predicted, scale, df = PopulationRule._predict(columns, finals, own)
        assert df == 1
        gains = finals - columns[:, 0]
        slope, intercept = np.polyfit(columns[:, 1], gains, 1)
        assert predicted == pytest.approx(own[0] + intercept + slope * own[1])
        hits += abs(new - predicted) / scale < student_t.ppf(0.9, df)
    assert 0.76 <= hits / draws <= 0.84


def _decaying(final: float, start: float, steps: np.ndarray) -> np.ndarray:
    return final + (start - final) * np.exp(-steps / 120)


@pytest.mark.parametrize(
    ("schedule", "own", "pruned"),
    [
        (None, (1.2, 3.0), True),
        ("cosine", (1.2, 3.0), False),
        ("cosine over half", (1.2, 3.0), True),
        ("constant", (1.2, 3.0), True),
        (None, (1.05, 2.4), False),
    ],
)
def test_a_trial_the_three_finished_trials_keep_is_pruned_by_rank_where_their_record_agrees(
    schedule: str | None, own: tuple[float, float], pruned: bool
) -> None:
    """Three finished trials (one column, one degree of freedom) give a trial in the middle of their levels 12% at
    step 120; it is behind 6 of the 7 trials there and its own forecast gives it 0.1%. Without a schedule, with a
    constant LR, or once its planned LR has fallen under half its peak (a cosine over the first 200 steps), the rank
    rule prunes it as before any trial had finished. With most of a planned decay still ahead (a cosine over the 400),
    or ahead of the finished trial that ended best (their record says a trial behind most here can end best), only
    the finished trials judge it, and keep it."""
    steps = np.arange(20, 401, 20.0)
    t = np.arange(401, dtype=np.float64)
    lrs = {
        "cosine": 0.1 * 0.5 * (1 + np.cos(np.pi * t / 400)) + 1e-6,
        "cosine over half": 0.1 * 0.5 * (1 + np.cos(np.pi * np.minimum(t / 200, 1.0))) + 1e-6,
        "constant": np.full(401, 0.1),
    }
    plan = None if schedule is None else LRSchedule(lrs[schedule])  # every trial's, as a sweep of one schedule
    finished = [
        TrialPath.of(steps, v, final=float(v[-1]), schedule=plan)
        for v in (_decaying(f, s, steps) for f, s in [(1.0, 2.6), (1.1, 3.0), (1.3, 3.0)])
    ]
    stopped = [TrialPath.of(steps[:12], _decaying(f, s, steps)[:12], schedule=plan) for f, s in
               [(1.05, 2.0), (1.1, 2.1), (1.08, 2.05), (1.02, 1.95)]]  # fmt: skip
    path = TrialPath.of(steps[:6], _decaying(*own, steps)[:6], schedule=plan)  # at step 120
    verdict = PopulationRule().judge(path, finished + stopped, horizon=400, chance_beyond=lambda target: 0.001)
    assert verdict.prune is pruned
    if pruned:
        assert verdict.reason.startswith("behind 86% of the 7 trials")
    else:
        assert verdict.reason.startswith("the 3 finished trials give it")
        assert verdict.chance is not None
        assert verdict.chance > 0.1


@pytest.mark.parametrize(
    ("peak", "until", "diverged", "pruned"),
    [
        (0.5, 100, False, False),  # above the finished trial's LR, most of its decay ahead: its forecast is blind
        (0.05, 100, False, True),  # below it: the finished trial has shown what the decay brings
        (0.5, 240, False, True),  # its LR already under half its peak: the forecast has seen the decay begin
        (0.5, 100, True, True),  # worse now than before: a divergence, no noise floor a decay removes
    ],
)
def test_the_own_forecast_does_not_prune_a_trial_above_the_finished_trials_lr_before_its_decay(
    peak: float, until: int, diverged: bool, pruned: bool
) -> None:
    """Behind every trial at its step and given 0.1% by its own forecast, a trial is pruned by the rank rule, unless
    its planned LR is above every finished trial's with most of its decay still ahead (a one-curve forecast sizes a
    decay's gain from the curve so far; a high LR's noise floor, which the decay removes, it does not see)."""
    steps = np.arange(20, 401, 20.0)
    t = np.arange(401, dtype=np.float64)

    def cosine(lr: float) -> LRSchedule:
        return LRSchedule(lr * 0.5 * (1 + np.cos(np.pi * t / 400)) + 1e-9)

    finished = TrialPath.of(steps, _decaying(1.0, 2.6, steps), final=1.0, schedule=cosine(0.1))
    stopped = [TrialPath.of(steps[:5], _decaying(f, s, steps)[:5], schedule=cosine(0.1)) for f, s in
               [(1.05, 2.0), (1.1, 2.1)]]  # fmt: skip
    n = int(until // 20)
    values = _decaying(1.6, 3.2, steps)[:n]
    if diverged:
        values[-3:] = 4.0
    path = TrialPath.of(steps[:n], values, schedule=cosine(peak))
    verdict = PopulationRule().judge(path, [finished, *stopped], horizon=400, chance_beyond=lambda target: 0.001)
    assert verdict.prune is pruned
    if not pruned:
        assert "its own forecast cannot see what the decay brings it" in verdict.reason
