"""A metric whose floor the data only estimates (a reward, a loss through zero): its interval's better side reads
past that floor (``open_ceiling.py``), while its point forecast stays on it."""

from __future__ import annotations

import csv
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from curvecast.forecasting.metric_map import metric_map

WILD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wild"


def _climbing_return(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An episode return logged every 10 steps of 10,000, still climbing at a tenth of the run, slowing down: it
    ends near 6.4, more than three times its best value at 10 %."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 1001) * 10.0
    return steps, 8.0 * (1.0 - np.exp(-steps / 6000.0)) + 0.1 * rng.standard_normal(steps.size)


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_a_return_still_climbing_has_an_interval_that_reads_past_its_best(fraction):
    steps, ret = _climbing_return()
    n = int(fraction * steps.size)
    f = Forecaster().fit(steps[:n], ret[:n], horizon=10_000, mode="max")
    assert f.ok, f.reason
    ceiling = -metric_map(ret[:n], "max", -math.inf, math.inf).base  # where the point forecast's fit may go
    end = float(ret[-50:].mean())
    assert end > ceiling  # the run ends past the floor its prefix supports: that floor cannot bound the interval
    lo, hi = f.interval(0.8)
    assert f.final <= ceiling + 1e-9 < hi  # the point stays where the data supports, the better side reads past it
    assert hi > 1.3 * ceiling
    assert f.prob_beyond(ceiling) > 0.05
    if fraction >= 0.25:
        assert lo < end < hi
        assert f.prob_beyond(6.0) > 0.05  # a target it will reach is not given up on


def test_the_forecast_curve_agrees_with_its_point_on_the_wider_map():
    steps, ret = _climbing_return()
    f = Forecaster().fit(steps[:250], ret[:250], horizon=10_000, mode="max")
    assert f.mapping.base != metric_map(ret[:250], "max", -math.inf, math.inf).base  # the wider map is in use
    at_horizon, now = f.predict([10_000, f.last_step])
    assert at_horizon == pytest.approx(f.final, rel=1e-9)
    assert now == pytest.approx(f.current, rel=1e-9)
    assert f.step_to_reach(f.current) == f.last_step
    reach = f.step_to_reach(0.5 * (f.current + f.final))
    assert reach is not None
    assert f.last_step < reach < 10_000


def test_a_positive_loss_keeps_its_floor_at_zero():
    steps = np.arange(1, 101) * 10.0
    f = Forecaster().fit(steps, 0.5 + 3.0 / np.sqrt(steps), horizon=10_000)
    assert f.ok
    assert f.mapping.base == 0.0
    assert f.interval(0.8)[0] > 0.0


@pytest.mark.skipif(not (WILD / "071.csv").is_file(), reason="needs ../shared/data/wild")
def test_a_dqn_return_from_a_quarter_of_its_log_reads_past_its_best():
    # A real Lightning DQN log: the episode return climbs 16 -> 200 (ends at 145); a quarter in, it has seen 41.
    with (WILD / "071.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["total_reward"]]
    steps = np.array([float(r["step"]) for r in rows])
    ret = np.array([float(r["total_reward"]) for r in rows])
    n = int(np.sum(steps <= 0.25 * steps[-1]))
    f = Forecaster().fit(steps[:n], ret[:n], horizon=int(steps[-1]), mode="max")
    assert f.ok, f.reason
    ceiling = -metric_map(ret[:n], "max", -math.inf, math.inf).base
    lo, hi = f.interval(0.8)
    assert f.final <= ceiling + 1e-9 < hi  # the better end reads past the fitted floor, the point does not
    assert hi > 2.0 * ret[:n].max()


def test_a_forecast_read_past_its_floor_pickles_as_the_forecast_process_sends_it():
    steps, ret = _climbing_return()
    f = Forecaster().fit(steps[:250], ret[:250], horizon=10_000, mode="max")
    back = pickle.loads(pickle.dumps(f))
    assert back.interval(0.8) == f.interval(0.8)
    assert back.predict([5_000])[0] == pytest.approx(f.predict([5_000])[0], rel=1e-12)


def test_open_ceiling_off_keeps_the_fitted_floor_and_a_non_bool_is_refused():
    steps, ret = _climbing_return()
    closed = Forecaster(open_ceiling=False).fit(steps[:250], ret[:250], horizon=10_000, mode="max")
    assert closed.mapping.base == metric_map(ret[:250], "max", -math.inf, math.inf).base
    assert closed.interval(0.8)[1] <= -closed.mapping.base + 1e-9
    with pytest.raises(TypeError, match="open_ceiling"):
        Forecaster(open_ceiling="no")
