"""Forecaster.fit input checks, the not-ok Forecast, and the Forecast's answers agreeing with each other."""

import math

import numpy as np
import pytest

from curvecast.forecasting import Forecast, Forecaster


def _curve(n=400, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1, dtype=float)
    return t, 2.0 + 3.0 * t**-0.5 + rng.normal(0.0, noise, n)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": [1, 2, 3], "values": [1.0, 2.0]}, "must have the same length, but got 3 and 2"),
        ({"steps": [1, 3, 2], "values": [1.0, 2.0, 3.0]}, "`steps` must increase, but step 2 follows 3"),
        ({"steps": [1, 2, 2], "values": [1.0, 2.0, 3.0]}, "`steps` must increase, but step 2 follows 2"),
        ({"steps": [-1, 2, 3], "values": [1.0, 2.0, 3.0]}, "`steps` must be non-negative"),
        ({"steps": [1, np.nan, 3], "values": [1.0, 2.0, 3.0]}, "`steps` must be finite"),
        ({"steps": [[1, 2]], "values": [[1.0, 2.0]]}, "must be 1-D"),
        ({"horizon": 5}, r"`horizon` must be at or after the last step, but got 5 < 10"),
        ({"lrs": np.ones(7)}, r"`lrs` must hold one LR per step 0..horizon \(21 values\)"),
        ({"lrs": np.r_[np.ones(20), -1.0]}, "`lrs` must be non-negative, but got -1 at step 20"),
        ({"lrs": np.r_[np.ones(20), np.inf]}, "`lrs` must be finite, but got inf at step 20"),
        ({"counts": np.ones(3)}, "`counts` must have the same length as `values`"),
        ({"counts": np.r_[np.ones(9), 0.0]}, "`counts` must be positive and finite, but got 0.0"),
    ],
)
def test_invalid_input_raises_naming_the_problem(kwargs, match):
    args = {"steps": np.arange(1, 11), "values": np.linspace(3, 2, 10), "horizon": 20} | kwargs
    with pytest.raises(ValueError, match=match):
        Forecaster().fit(**args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_points": 2}, "`min_points` must be at least 3, but got 2"),
        ({"max_bins": 4}, "`max_bins` must be at least 16, but got 4"),
        ({"holdout": 0.95}, r"`holdout` must lie in \[0, 0.9\), but got 0.95"),
        ({"transient": -0.1}, r"`transient` must lie in \[0, 0.9\), but got -0.1"),
        ({"anneal_prior_sd": 0.0}, "`anneal_prior_sd`, `interval_scale` > 0"),
    ],
)
def test_invalid_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Forecaster(**kwargs)


def test_interval_rejects_probability_outside_unit_interval():
    t, y = _curve()
    with pytest.raises(ValueError, match=r"`p` must lie in \(0, 1\), but got 1.5"):
        Forecaster().fit(t, y, horizon=1000).interval(1.5)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([3.0, 2.5, np.nan, 2.2], "too few finite points (3 < 5)"),
        ([np.nan] * 10, "no finite values"),
        ([np.inf, -np.inf, np.nan, np.nan, np.nan, np.nan], "no finite values"),
        ([], "no points"),
    ],
)
def test_forecast_that_cannot_be_made_says_why(values, reason):
    steps = np.arange(1, len(values) + 1)
    f = Forecaster().fit(steps, np.asarray(values, dtype=float), horizon=100)
    assert not f.ok
    assert f.reason == reason
    assert math.isnan(f.final)
    assert all(math.isnan(x) for x in f.interval(0.8))
    assert np.isnan(f.predict([10, 20])).all()
    assert f.step_to_reach(1.0) is None
    assert math.isnan(f.prob_below(1.0))
    assert f.horizon == 100


def test_nonfinite_points_are_dropped_not_fatal():
    t, y = _curve()
    y[::7] = np.nan
    y[3] = np.inf
    f = Forecaster().fit(t, y, horizon=1000)
    assert f.ok
    assert f.final == pytest.approx(2.0 + 3.0 * 1000**-0.5, rel=0.02)


def test_forecast_fields():
    t, y = _curve()
    f = Forecaster().fit(t, y, horizon=1000)
    assert isinstance(f, Forecast)
    assert f.ok
    assert f.reason is None
    assert (f.horizon, f.last_step) == (1000, 400)
    assert isinstance(f.model, str)
    assert f.model
    with pytest.raises(AttributeError):
        f.final = 1.0  # frozen


@pytest.mark.parametrize("p", [0.5, 0.8, 0.95])
def test_prob_below_agrees_with_interval(p):
    t, y = _curve()
    f = Forecaster().fit(t, y, horizon=2000)
    lo, hi = f.interval(p)
    assert lo < f.final < hi
    assert f.prob_below(lo) == pytest.approx((1 - p) / 2, abs=1e-9)
    assert f.prob_below(hi) == pytest.approx((1 + p) / 2, abs=1e-9)
    assert f.prob_below(f.final) == pytest.approx(0.5, abs=1e-9)
    assert f.prob_below(0.0) == 0.0


def test_wider_probability_gives_wider_interval():
    t, y = _curve()
    f = Forecaster().fit(t, y, horizon=2000)
    lo8, hi8 = f.interval(0.8)
    lo9, hi9 = f.interval(0.9)
    assert lo9 < lo8 < hi8 < hi9


def test_step_to_reach():
    t, y = _curve(noise=0.001)
    f = Forecaster().fit(t, y, horizon=5000)
    target = 2.0 + 3.0 * 800**-0.5
    step = f.step_to_reach(target)
    assert step is not None
    assert 700 < step < 950
    assert f.predict([step])[0] <= target < f.predict([step - 1])[0]
    assert f.step_to_reach(10.0) == f.last_step  # already below
    assert f.step_to_reach(1.5) is None  # below the asymptote: out of reach by the horizon


def test_predict_follows_the_curve_and_holds_past_the_horizon():
    t, y = _curve(noise=0.001)
    f = Forecaster().fit(t, y, horizon=1000)
    p = f.predict([200, 400, 1000, 5000])
    assert p[:2] == pytest.approx(2.0 + 3.0 * np.array([200, 400]) ** -0.5, rel=3e-3)
    # With no schedule given, the horizon forecast hedges a little towards an LR decay the prefix cannot rule out.
    assert p[2] == pytest.approx(2.0 + 3.0 * 1000**-0.5, rel=1e-2)
    assert p[3] == p[2]
    assert f.final == pytest.approx(p[2])


def test_counts_weight_binned_history():
    t, y = _curve(n=2000, noise=0.05)
    # A heavily counted row that disagrees pulls the fit; the same row with count 1 barely does.
    y[-1] += 0.2
    light = Forecaster().fit(t, y, horizon=4000, counts=np.ones_like(y)).final
    c = np.ones_like(y)
    c[-1] = 1e3
    heavy = Forecaster().fit(t, y, horizon=4000, counts=c).final
    assert heavy > light + 0.01


@pytest.mark.parametrize("with_schedule", [False, True])
def test_a_forecast_pickles_and_answers_the_same_after(with_schedule):
    """Results cross process boundaries (multiprocessing sweeps, saved reports): a fitted forecast must pickle."""
    import pickle

    t = np.arange(1, 400)
    v = 2.0 + 5.0 / (1.0 + t / 30.0) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    lrs = np.concatenate([np.ones(500), np.linspace(1.0, 0.01, 501)]) if with_schedule else None
    forecast = Forecaster().fit(t, v, horizon=1000, lrs=lrs)
    assert forecast.ok
    copy = pickle.loads(pickle.dumps(forecast))
    at = np.array([400, 700, 1000])
    np.testing.assert_array_equal(copy.predict(at), forecast.predict(at))
    assert copy.interval(0.8) == forecast.interval(0.8)
    assert copy.step_to_reach(forecast.final * 1.01) == forecast.step_to_reach(forecast.final * 1.01)


def test_fit_keeps_no_state_and_the_forecast_carries_its_diagnostics():
    t, y = _curve()
    fc = Forecaster()
    config = dict(vars(fc))
    schedule = np.r_[np.ones(500), np.linspace(1.0, 0.0, 501)]
    first = fc.fit(t, y, horizon=1000, lrs=schedule)
    second = fc.fit(t[:200], y[:200], horizon=1000)
    assert vars(fc) == config  # only the arguments: nothing of either fit
    for f in (first, second):
        d = f.diagnostics
        assert d is not None
        assert d.binned.steps[-1] <= f.last_step
        assert set(d.scale_parts) == {"spread", "held", "held_prior", "anneal", "noise", "floor", "early"}
        assert sum(w for w, _ in d.members) == pytest.approx(1.0)
        assert f.model.startswith(d.members[0][1].describe() if len(d.members) == 1 else f"{d.members[0][0]:.2f}")
    assert first.diagnostics.schedule is not None
    assert second.diagnostics.schedule is None
    assert first.diagnostics.slope > 0
    with pytest.raises(AttributeError):
        first.diagnostics.slope = 1.0  # frozen


def test_a_forecast_that_was_not_made_has_no_diagnostics():
    t, y = _curve()
    assert Forecaster().fit(t[:3], y[:3], horizon=1000).diagnostics is None
    too_far = Forecaster().fit(t, y, horizon=10**9)
    assert not too_far.ok
    assert too_far.diagnostics is None
