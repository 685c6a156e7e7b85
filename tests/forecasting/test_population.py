"""The population rule's prediction of a trial's final from the finished trials: its intervals cover what they say."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t

from curvecast.forecasting.population import PopulationRule


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
    _, scale, _ = PopulationRule._predict(np.array([[-0.5], [0.5]]), np.array([1.0, 2.0]), np.array([0.0]))
    assert scale == np.inf
