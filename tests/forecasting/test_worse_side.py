"""The worse side of a forecast's interval: held to the curve's recent worst level where the planned LR does not rise
again, and every answer of the Forecast reading the two halves alike."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from curvecast.forecasting.ranking import FinalDistribution
from real_curve import load_train_curve

CURVES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "curves"
Z80 = 1.2815515655446004


def _cosine(horizon: int, warmup: int = 0) -> np.ndarray:
    steps = np.arange(horizon + 1)
    lrs = 0.5 * (1 + np.cos(np.pi * steps / horizon))
    if warmup:
        lrs = np.minimum(lrs, (steps + 1) / warmup)
    return lrs


def _early_run(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first 40 of 400 steps of a loss leaving its start (4.2 -> 2.3), logged every step with 3% noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1, dtype=float)
    return t, (1.0 + 3.2 * (1 + t / 4.0) ** -0.7) * np.exp(0.03 * rng.standard_normal(n))


def test_an_early_forecast_with_a_falling_schedule_ends_no_worse_than_its_recent_worst():
    t, y = _early_run()
    f = Forecaster().fit(t, y, horizon=400, lrs=_cosine(400))
    assert f.ok, f.reason
    assert f.worse_scale < f.log_scale  # the bound holds here: this is what the test is about
    lo, hi = f.interval(0.8)
    recent_worst = y[-8:].max()
    assert hi <= recent_worst * math.exp(Z80 * f.diagnostics.noise_floor) * (1 + 1e-9)
    assert lo == pytest.approx(f.final * math.exp(-Z80 * f.log_scale))  # the better side keeps its width


def test_without_the_bound_the_interval_would_reach_far_above_the_curve():
    """The case it is for: the symmetric interval put its worse end above anything the run showed."""
    t, y = _early_run()
    f = Forecaster().fit(t, y, horizon=400, lrs=_cosine(400))
    assert f.final * math.exp(Z80 * f.log_scale) > y.max()


@pytest.mark.parametrize("p", [0.5, 0.8, 0.95])
def test_both_halves_agree_with_the_interval(p):
    t, y = _early_run()
    f = Forecaster().fit(t, y, horizon=400, lrs=_cosine(400))
    assert f.worse_scale < f.log_scale
    lo, hi = f.interval(p)
    assert lo < f.final < hi
    assert f.prob_below(lo) == pytest.approx((1 - p) / 2, abs=1e-9)
    assert f.prob_below(hi) == pytest.approx((1 + p) / 2, abs=1e-9)
    assert f.prob_below(f.final) == pytest.approx(0.5, abs=1e-9)
    ending = FinalDistribution.of(f)  # what an event file keeps gives the same chances
    for value in (lo, hi, f.final * 1.01, f.final * 0.99):
        assert ending.prob_beyond(value) == pytest.approx(f.prob_beyond(value), abs=1e-12)


def test_a_score_bounds_its_lower_end():
    """An accuracy (mode max): the worse side is below, held to the recent lowest accuracy."""
    t, y = _early_run()
    acc = 1.0 - y / 5.0  # 0.16 -> 0.66
    f = Forecaster().fit(t, acc, horizon=400, lrs=_cosine(400), mode="max", bounds=(0.0, 1.0))
    assert f.ok, f.reason
    assert f.worse_scale < f.log_scale
    lo, hi = f.interval(0.8)
    assert lo < f.final < hi
    error_now = 1.0 - acc[-8:].min()  # the worst recent error rate, the falling quantity of an accuracy
    assert lo >= 1.0 - error_now * math.exp(Z80 * f.diagnostics.noise_floor) - 1e-9
    assert f.prob_below(lo) == pytest.approx(0.1, abs=1e-9)


@pytest.mark.parametrize(
    "lrs",
    [
        _cosine(400, warmup=100),  # the warmup is not over at step 40: the LR rises ahead
        np.r_[np.full(200, 0.1), np.full(201, 1.0)],  # a step up ahead
    ],
    ids=["warmup", "step_up"],
)
def test_an_lr_that_rises_ahead_leaves_both_sides_alike(lrs):
    t, y = _early_run()
    f = Forecaster().fit(t, y, horizon=400, lrs=lrs)
    assert f.ok, f.reason
    assert math.isnan(f.worse_scale)
    assert f.diagnostics.worse_bound == math.inf


def test_without_a_schedule_both_sides_are_alike():
    t, y = _early_run()
    f = Forecaster().fit(t, y, horizon=400)
    assert math.isnan(f.worse_scale)


@pytest.mark.skipif(not CURVES.is_dir(), reason=f"real curves not found at {CURVES}")
def test_real_curves_with_their_schedules_end_inside_the_worse_bound():
    """AlgoPerf and speedrun curves with their logged LRs, from 10 % and 25 % of each run: the value the run ended
    at never lies past the worse side's 80 % end, and the bound holds on some of them."""
    bounded = 0
    checked = 0
    for path in sorted(CURVES.glob("*.csv"))[::4]:
        if json.loads(path.with_suffix(".json").read_text()).get("diverged"):
            continue
        steps, values, horizon, lrs = load_train_curve(path)
        if lrs is None:
            continue
        truth = float(np.median(values[-max(len(values) // 50, 3) :]))
        for frac in (0.1, 0.25):
            seen = steps <= frac * horizon
            if seen.sum() < 10:
                continue
            f = Forecaster().fit(steps[seen], values[seen], horizon=horizon, lrs=lrs)
            if not f.ok:
                continue
            checked += 1
            bounded += f.worse_scale < f.log_scale
            assert truth <= f.interval(0.8)[1], (path.name, frac)
    assert checked >= 10
    assert bounded >= 1


def _one_cycle_lrs(total: int) -> np.ndarray:
    """torch's ``OneCycleLR(max_lr=5e-3, total_steps=total)`` over an AdamW at 2e-3, as curvecast replays it: the LR of
    steps 0..total, the last (the horizon step, which no step trains with) past the cosine's end, where it turns up."""
    import torch

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=total)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(total):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return np.array(lrs)


def test_the_lr_of_the_horizon_step_lifts_no_bound():
    """A classifier's per-step loss (bf16, 4 batches accumulated, ``OneCycleLR``; recorded from a live run) falling
    2.06 -> 0.014 over 1000 steps. At step 407 its forecast was 0.038 with an 80% interval up to 0.84, 15 times the
    loss then: the replayed LR of step 1000 is above that of step 999, and that "rise" took the bound off."""
    losses = np.loadtxt(Path(__file__).parents[1] / "data" / "onecycle_batch_loss.txt")
    lrs = _one_cycle_lrs(1000)
    assert lrs[1000] > lrs[999]  # what torch's schedule does at its end
    n = 408
    f = Forecaster().fit(np.arange(n), losses[:n], horizon=1000, lrs=lrs)
    assert f.ok, f.reason
    lo, hi = f.interval(0.8)
    recent_worst = losses[n - n // 5 : n].max()
    assert hi <= recent_worst * math.exp(Z80 * 2 * f.diagnostics.noise_floor)
    assert lo <= np.median(losses[-50:]) <= hi  # where the run went
