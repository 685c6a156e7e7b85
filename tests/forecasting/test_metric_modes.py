"""Metrics other than a positive falling loss: accuracy (mode="max", bounded), negative losses, late, sparse curves."""

import csv
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from curvecast.forecasting import Forecaster


def _accuracy(n=40, seed=0):
    rng = np.random.default_rng(seed)
    epochs = np.arange(1, n + 1) * 100.0
    clean = 0.9 - 0.5 * (epochs / 100.0) ** -0.7
    return epochs, clean, clean + rng.normal(0.0, 0.004, n)


def test_rising_accuracy_is_forecast_rising_inside_its_bounds():
    t, clean, acc = _accuracy()
    seen = 15
    f = Forecaster().fit(t[:seen], acc[:seen], horizon=int(t[-1]), mode="max", bounds=(0.0, 1.0))
    assert f.ok
    assert f.mode == "max"
    assert f.final > clean[seen - 1]  # still rising past the prefix
    assert f.final == pytest.approx(clean[-1], abs=0.02)
    lo, hi = f.interval(0.8)
    assert 0.0 <= lo < clean[-1] < hi <= 1.0
    ahead = f.predict(t[seen:])
    assert np.all(np.diff(ahead) >= -1e-12)
    # The same curve read as a loss is forecast falling: the direction is what mode changes.
    as_loss = Forecaster().fit(t[:seen], acc[:seen], horizon=int(t[-1]))
    assert as_loss.final < f.final


def test_probabilities_and_reach_follow_the_mode():
    t, clean, acc = _accuracy()
    f = Forecaster().fit(t[:20], acc[:20], horizon=int(t[-1]), mode="max", bounds=(0.0, 1.0))
    targets = np.linspace(0.8, 0.95, 7)
    beyond = np.array([f.prob_beyond(x) for x in targets])
    assert np.all(np.diff(beyond) < 0)  # a higher accuracy target is less likely to be beaten
    for x in targets:
        assert f.prob_below(x) == pytest.approx(1.0 - f.prob_beyond(x))
    assert f.prob_beyond(1.0) == 0.0  # the bound itself is out of reach
    target = float(f.predict(3000.0)[0]) - 1e-9
    step = f.step_to_reach(target)
    assert step == 3000
    assert f.predict(step)[0] >= target > f.predict(step - 1)[0]
    assert f.step_to_reach(0.5) == f.last_step  # already reached
    assert f.step_to_reach(0.999) is None


def _wild_accuracies(wild: Path):
    out = []
    for path in sorted(wild.glob("*.csv")):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "val_acc" not in rows[0] or "step" not in rows[0]:
            continue
        pairs = sorted({float(r["step"]): float(r["val_acc"]) for r in rows if r["val_acc"] and r["step"]}.items())
        if len(pairs) >= 10:
            out.append((np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])))
    return out


def test_real_validation_accuracy_curves_are_forecast_upwards_within_bounds(curves_dir):
    curves = _wild_accuracies(curves_dir.parent / "wild")
    if len(curves) < 3:
        pytest.skip("the wild Lightning logs are not next to the curves")
    errors = {"max": [], "min": []}
    for steps, acc in curves:
        seen = steps <= 0.5 * steps[-1]
        up = Forecaster().fit(steps[seen], acc[seen], horizon=int(steps[-1]), mode="max", bounds=(0, 1))
        down = Forecaster().fit(steps[seen], acc[seen], horizon=int(steps[-1]))
        assert up.ok
        lo, hi = up.interval(0.8)
        assert 0.0 <= lo <= up.final <= hi <= 1.0
        assert up.final >= down.final - 1e-9
        errors["max"].append(abs(up.final / acc[-1] - 1))
        errors["min"].append(abs(down.final / acc[-1] - 1))
    assert np.median(errors["max"]) < np.median(errors["min"])


def test_negative_loss_is_forecast_with_an_estimated_floor():
    rng = np.random.default_rng(1)
    t = np.arange(1, 2001, dtype=float)
    clean = -1.5 + 3.0 * t**-0.4  # a Gaussian NLL that crosses zero early
    y = clean + rng.normal(0.0, 0.01, t.size)
    f = Forecaster().fit(t[:500], y[:500], horizon=2000)
    assert f.ok, f.reason
    assert f.final < 0
    assert f.final == pytest.approx(clean[-1], abs=0.05)
    lo, hi = f.interval(0.8)
    assert lo < clean[-1] < hi
    assert f.prob_below(hi) > f.prob_below(f.final) > f.prob_below(lo)
    assert f.prob_below(hi) == pytest.approx(f.prob_beyond(hi))


def test_loss_that_reaches_zero_is_forecast():
    t = np.arange(1, 1001, dtype=float)
    y = np.round(0.5 * np.exp(-t / 100.0), 3)  # exactly 0 from step ~760 on
    bounded = Forecaster().fit(t, y, horizon=2000, bounds=(0.0, None))
    assert bounded.ok, bounded.reason
    lo, hi = bounded.interval(0.8)
    assert 0.0 <= lo <= bounded.final <= hi < 0.05
    free = Forecaster().fit(t, y, horizon=2000)
    assert free.ok, free.reason
    assert abs(free.final) < 0.05


def test_curve_observed_from_a_late_step_gets_a_sane_forecast():
    rng = np.random.default_rng(2)
    horizon = 10_000
    t = np.arange(1000, 3001, 10, dtype=float)
    clean = 2.0 + 30.0 * np.maximum(np.arange(horizon + 1, dtype=float), 1.0) ** -0.5
    y = clean[t.astype(int)] * np.exp(rng.normal(0.0, 0.005, t.size))
    lrs = 0.5 * (1 + np.cos(np.pi * np.arange(horizon + 1) / horizon))
    for given in (None, lrs):
        f = Forecaster().fit(t, y, horizon=horizon, lrs=given)
        assert f.ok, f.reason
        assert f.final == pytest.approx(clean[-1], rel=0.05)
        lo, hi = f.interval(0.8)
        assert 0.5 < lo <= f.final <= hi < 6.0


def test_far_horizon_is_cheap_and_says_why_it_is_not_forecast():
    t = np.arange(1, 1001, dtype=float)
    f = Forecaster().fit(t, 2.0 + 3.0 * t**-0.3, horizon=10**12)
    assert not f.ok
    assert "the horizon is 1e+09x the last step" in f.reason
    assert math.isnan(f.final)
    assert f.step_to_reach(2.0) is None


def test_step_to_reach_bisects_a_wide_cell_exactly():
    t = np.arange(1, 100_001, 100, dtype=float)
    f = Forecaster().fit(t, 2.0 + 3.0 * t**-0.3, horizon=10**7)
    assert f.ok, f.reason
    target = float(f.predict(5_000_000.0)[0])
    step = f.step_to_reach(target)
    assert step is not None
    assert f.predict(step)[0] <= target < f.predict(step - 1)[0]


def test_sparse_epoch_level_curve_of_eight_points():
    epochs = np.arange(1, 9) * 250.0
    loss = 0.3 + 1.2 * (epochs / 250.0) ** -0.8
    f = Forecaster().fit(epochs, loss, horizon=5000)
    assert f.ok, f.reason
    assert 0.3 <= f.final < loss[-1]


def test_max_mode_forecast_pickles_with_its_mapping():
    t, _, acc = _accuracy()
    f = Forecaster().fit(t[:20], acc[:20], horizon=int(t[-1]), mode="max", bounds=(0.0, 1.0))
    g = pickle.loads(pickle.dumps(f))
    assert g.mapping == f.mapping
    assert g.interval(0.8) == f.interval(0.8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "maximize"}, r"Expected `mode` to be one of \('min', 'max'\), but got 'maximize'"),
        ({"bounds": (1.0, 0.0)}, r"`bounds` must satisfy lo < hi, but got \(1.0, 0.0\)"),
        ({"bounds": 5}, r"Expected `bounds` to be a pair"),
        ({"bounds": (0.0, 2.5)}, r"`values` must lie within `bounds` \(0, 2.5\), but got 3"),
        ({"references": [1.0]}, r"Expected `references` to hold `Reference` objects, but got float"),
    ],
)
def test_invalid_mode_bounds_and_references_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Forecaster().fit(np.arange(1, 11), np.linspace(3, 2, 10), horizon=20, **kwargs)
