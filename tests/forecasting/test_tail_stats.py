"""TailStats, and the shared statistics and sorted differences of a SeriesLevel: the values of a fresh computation at
every point, whatever changed the window (a push, an outlier kept out, an LR rise, the raw scale, a state loaded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curvecast.forecasting import AnomalyDetector
from curvecast.forecasting.anomalies.level import MIN_DIFFS
from curvecast.forecasting.anomalies.stats import median, sigma_of_diffs
from curvecast.forecasting.anomalies.tail_stats import TailStats

POINTS = (1, 3, 5, 7, 9, 16, 31, 32, 50)


def hostile_curve(n: int = 400, seed: int = 0) -> np.ndarray:
    """A noisy fall with spikes (outliers kept out of the differences), a level shift and a value <= 0 late on."""
    rng = np.random.default_rng(seed)
    length = max(n, 400)
    v = (1.0 + 5.0 * (1.0 + np.arange(length) / 30.0) ** -0.8) * np.exp(0.05 * rng.standard_normal(length))
    v[[60, 61, 150, 220]] *= 8.0
    v[250:] *= 3.0
    v[330] = -0.5
    return v[:n]


def assert_fresh(det: AnomalyDetector) -> None:
    level = det.level
    if len(level.diffs) >= MIN_DIFFS and level.n_accepted % 4 == 0:
        level.refresh_noise()  # due at this point (the level's sorted differences answer it)
        assert level.sigma == sigma_of_diffs(level.diffs)
    for k in POINTS:
        if level.recent:
            assert level.recent_median(k) == median(level.recent[-k:])
        if level.diffs:
            assert level.diffs_median(k) == median(level.diffs[-k:])
            assert level.diffs_noise(k) == sigma_of_diffs(level.diffs[-k:])


@pytest.mark.parametrize("with_schedule", [False, True])
def test_shared_statistics_follow_every_point(with_schedule: bool) -> None:
    v = hostile_curve()
    # A warm restart at step 200 empties the recent points (a scheduled LR rise).
    lrs = [1e-3 if s < 200 else 2e-3 for s in range(len(v))] if with_schedule else None
    det = AnomalyDetector(lrs=lrs)
    scales = set()
    for step, value in enumerate(v.tolist()):
        det.update(step, value)
        scales.add(det.level.log_scale)
        assert_fresh(det)  # read at every point: a statistic kept past a change of its window shows here
    assert scales == {True, False}  # the curve did switch scales


def test_loaded_state_replaces_the_shared_statistics() -> None:
    a, b = AnomalyDetector(), AnomalyDetector()
    for step, value in enumerate(hostile_curve(200, seed=1).tolist()):
        a.update(step, value)
    for step, value in enumerate(hostile_curve(120, seed=2).tolist()):
        b.update(step, value)
    assert_fresh(b)  # b's statistics are read (and kept) before the load
    before = b.level.recent_median(7)
    b.level.load_state_dict(a.level.state_dict())  # into the level itself (a detector's load builds a new one)
    assert b.level.recent_median(7) == a.level.recent_median(7) != before
    assert_fresh(b)
    # From the same state, the same noise at every later point (b's own differences must not linger).
    for step, value in enumerate(hostile_curve(260, seed=1)[200:].tolist(), start=200):
        a.level.enter(step)
        a.level.absorb(value, lr_rose=False)
        b.level.enter(step)
        b.level.absorb(value, lr_rose=False)
        assert b.level.noise(1.0) == a.level.noise(1.0)
        assert_fresh(b)


def test_tail_stats_matches_a_fresh_computation_and_forgets_on_clear() -> None:
    rng = np.random.default_rng(3)
    window, stats = rng.standard_normal(40).tolist(), TailStats()
    assert stats.noise(window, 16) == sigma_of_diffs(window[-16:])
    assert stats.median(window, 16) == median(window[-16:])
    window.append(100.0)
    stats.clear()
    assert stats.median(window, 3) == median(window[-3:])
    assert stats.noise(window, 16) == sigma_of_diffs(window[-16:])
    assert math.isfinite(stats.noise(window, 200))  # a tail longer than the window takes all of it
