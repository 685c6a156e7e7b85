"""Seeded synthetic curves with known parameters: the fitters must recover them."""

import numpy as np
import pytest
from scipy.optimize import curve_fit

from curvecast.forecasting import Forecaster
from curvecast.forecasting.curves import ALPHAS, mpl_shaped_family, pow3
from curvecast.forecasting.preprocess import bin_curve
from curvecast.forecasting.schedule import MPL_BETA, MPL_C, MPL_GAMMA, LRSchedule
from curvecast.forecasting.varpro import CrossedDesign, fit_grid, huber_weights


def _wsd(horizon, decay_frac=0.3, warmup=0):
    t = np.arange(horizon + 1, dtype=float)
    up = np.minimum(1.0, (t + 1) / warmup) if warmup else np.ones_like(t)
    down = np.clip((horizon - t) / (decay_frac * horizon), 0.0, 1.0)
    return np.minimum(up, down)


def _mpl_curve(schedule, t, l0, a, alpha, b):
    return l0 + a * schedule.s1(t) ** -alpha - b * schedule.anneal(t)


def test_varpro_matches_curve_fit_on_a_power_law():
    rng = np.random.default_rng(1)
    t = np.arange(10, 2001, dtype=float)
    y = 1.5 + 4.0 * (t / 2000) ** -0.37 * 0.1 + rng.normal(0, 0.002, t.size)
    grid = np.geomspace(0.05, 3.0, 400)[:, None]
    res = fit_grid(pow3(t, grid, 2000.0), y, np.ones_like(y), nonneg=(0, 1))
    alpha = grid[res.best, 0]
    ref, _ = curve_fit(lambda x, c, a, al: c + a * (x / 2000) ** -al, t, y, p0=(1.0, 0.5, 0.5))
    assert alpha == pytest.approx(ref[2], rel=0.02)
    assert res.coef[res.best] == pytest.approx(ref[:2], rel=0.02)
    assert alpha == pytest.approx(0.37, rel=0.1)


def test_varpro_keeps_constrained_coefficients_non_negative():
    t = np.arange(1, 200, dtype=float)
    y = 5.0 - 0.01 * t  # a straight falling line: the best unconstrained L0 + A t^-alpha has a negative L0 here
    res = fit_grid(pow3(t, ALPHAS[:, None], 200.0), y, np.ones_like(y), nonneg=(0, 1))
    assert np.all(res.coef >= -1e-12)


def test_prior_row_pulls_an_unidentified_coefficient_to_its_mean():
    t = np.linspace(1, 10, 50)
    design = np.stack([np.ones_like(t), 1 / t, np.zeros_like(t)], axis=-1)[None]  # third column never observed
    res = fit_grid(design, 2 + 1 / t, np.ones_like(t), nonneg=(2,), prior=((2, 0.3, 0.1),))
    assert res.coef[0] == pytest.approx([2.0, 1.0, 0.3], abs=1e-6)


def test_a_crossed_design_fits_as_its_dense_design():
    """The MPL family with its shape on the grid (720 grid points from 54 distinct columns) forms its normal equations
    from its column tables: the same fit as the dense (G, n, p) design, to rounding, the sign constraints included."""
    schedule = LRSchedule(_wsd(2000, decay_frac=0.3))
    t = np.linspace(20.0, 1700.0, 120)
    rng = np.random.default_rng(3)
    y = _mpl_curve(schedule, t, 2.0, 1.5, 0.4, 0.3) * np.exp(rng.normal(0.0, 0.01, t.size))
    family = mpl_shaped_family(schedule, float(schedule.s1(np.array([t[-1]]))[0]), positive=True)
    crossed = family.columns(t, family.grid)
    assert isinstance(crossed, CrossedDesign)
    assert crossed.shape == (len(family.grid), t.size, 3)
    dense = np.stack([crossed[g] for g in range(len(family.grid))])
    head = t < 1000.0
    np.testing.assert_array_equal(crossed[:, head][5], dense[:, head][5])
    w = 1.0 / (0.01 * y) ** 2
    fits = []
    for design, rows in ((crossed, slice(None)), (crossed[:, head], head)):
        fast = fit_grid(design, y[rows], w[rows], family.nonneg)
        slow = fit_grid(dense[:, rows], y[rows], w[rows], family.nonneg)
        assert fast.best == slow.best
        np.testing.assert_allclose(fast.objective, slow.objective, rtol=1e-9, atol=1e-9 * slow.objective.max())
        np.testing.assert_allclose(fast.coef, slow.coef, rtol=1e-7, atol=1e-9)
        fits.append(fast)
    assert fits[0].objective[fits[0].best] / t.size < 2.0  # the law fits its own curve to the 1 % noise


@pytest.mark.parametrize("shape", ["rising tail", "noisy power law"])
def test_asked_for_the_best_point_only_fit_grid_skips_solves_that_cannot_win_and_finds_the_same_best(shape):
    """With the penalty given, grid points whose unconstrained fit already loses skip their sign-constrained solves
    (objective inf); the best point and its coefficients are those of the full search."""
    t = np.arange(10, 400, dtype=float)
    rng = np.random.default_rng(0)
    if shape == "rising tail":  # the large exponents want a negative amplitude
        y = 1.0 + 2.0 * (t / 400) ** -0.3 + 0.002 * t
    else:
        y = 1.0 + (t / 400) ** -0.5 + rng.normal(0.0, 0.05, t.size)
    design, w = pow3(t, ALPHAS[:, None], 400.0), np.ones_like(y)
    penalty = np.linspace(0.0, 0.5, len(ALPHAS))
    full = fit_grid(design, y, w, nonneg=(0, 1))
    pruned = fit_grid(design, y, w, nonneg=(0, 1), penalty=penalty)
    assert not np.isinf(full.objective).any()
    assert np.isinf(pruned.objective).sum() >= 5  # solves skipped
    best = int(np.nanargmin(full.objective + penalty))
    assert int(np.nanargmin(pruned.objective + penalty)) == best
    np.testing.assert_array_equal(pruned.coef[best], full.coef[best])
    assert pruned.objective[best] == full.objective[best]


def test_huber_weights_down_weight_only_outliers():
    w = huber_weights(np.array([0.0, 1.0, 4.0, -8.0]), np.ones(4), k=2.0)
    assert w == pytest.approx([1.0, 1.0, 0.5, 0.25])


def test_schedule_features():
    sched = LRSchedule(np.r_[np.ones(100), np.full(901, 0.1)] * 3e-4)  # one step drop 1 -> 0.1 at step 100
    # S1 counts steps 0..t at the peak LR; S_W = area up to the peak (step 0) + 1.
    assert sched.s1(np.array([0.0, 99.0])) == pytest.approx([1.0 + 2.0, 100.0 + 2.0])
    ld = sched.anneal(np.array([50.0, 99.0, 100.0, 150.0, 1000.0]))
    assert ld[:2] == pytest.approx([0.0, 0.0])
    assert np.all(np.diff(ld[1:]) > 0)
    # Closed form for a single drop: LD(t) = 0.9 * G(0.1^-gamma * 0.1 * (t - 99)).
    x = 0.1**-MPL_GAMMA * 0.1 * (1000 - 99)
    assert ld[-1] == pytest.approx(0.9 * (1 - (MPL_C * x + 1) ** -MPL_BETA), rel=1e-6)
    assert sched.total_drop_after(50.0) == pytest.approx(0.9)
    assert sched.total_drop_after(200.0) == 0.0


def test_binning_keeps_the_weighted_mean_and_counts():
    rng = np.random.default_rng(2)
    t = np.arange(50_000, dtype=float)
    c = rng.integers(1, 5, t.size).astype(float)
    y = rng.normal(3.0, 0.1 / np.sqrt(c))  # a mean of c raw points with sd 0.1
    b = bin_curve(t, y, c, 64)
    assert len(b.steps) == 64
    assert b.counts.sum() == c.sum()
    assert np.dot(b.values, b.counts) == pytest.approx(np.dot(y, c))
    assert np.all(np.diff(b.steps) > 0)
    assert b.noise == pytest.approx(0.1 / 3.0, rel=0.1)  # relative to the level


@pytest.mark.parametrize(("alpha", "a"), [(0.3, 3.0), (0.6, 8.0)])
def test_schedule_free_forecast_recovers_a_power_law(alpha, a):
    rng = np.random.default_rng(3)
    t = np.arange(1, 3001, dtype=float)
    y = 2.0 + a * t**-alpha + rng.normal(0, 0.01, t.size)
    f = Forecaster().fit(t[:1500], y[:1500], horizon=3000)
    truth = 2.0 + a * 3000**-alpha
    assert f.final == pytest.approx(truth, rel=0.008)
    lo, hi = f.interval(0.8)
    assert lo < truth < hi


def test_mpl_fit_recovers_the_annealing_drop_once_the_decay_is_seen():
    rng = np.random.default_rng(4)
    horizon = 4000
    sched = LRSchedule(_wsd(horizon))
    t = np.arange(1, horizon + 1, dtype=float)
    l0, a, alpha, b = 2.5, 1.2, 0.45, 0.25
    y = _mpl_curve(sched, t, l0, a, alpha, b) + rng.normal(0, 0.02, t.size)
    seen = t <= 0.9 * horizon
    fc = Forecaster()
    f = fc.fit(t[seen], y[seen], horizon=horizon, lrs=_wsd(horizon))
    truth = _mpl_curve(sched, np.array([float(horizon)]), l0, a, alpha, b)[0]
    assert f.final == pytest.approx(truth, rel=0.005)
    (_, fitted), *_ = f.diagnostics.members
    assert fitted.name in ("mpl", "mpl-free", "mpl-shaped")
    assert fitted.coef[2] == pytest.approx(b, rel=0.1)


def test_annealing_prior_fills_in_a_decay_not_yet_seen():
    rng = np.random.default_rng(5)
    horizon = 4000
    lrs = _wsd(horizon, warmup=100)
    sched = LRSchedule(lrs)
    t = np.arange(1, horizon + 1, dtype=float)
    y = _mpl_curve(sched, t, 2.5, 1.2, 0.45, 0.0) + rng.normal(0, 0.02, t.size)
    seen = t <= 0.4 * horizon  # the decay starts at 70 %
    # Both fit the same window (the calibrated transient would measure the slope on a later part than the test means).
    with_schedule = Forecaster(anneal_prior=0.05, transient=0.05).fit(t[seen], y[seen], horizon=horizon, lrs=lrs)
    flat = Forecaster(transient=0.05).fit(t[seen], y[seen], horizon=horizon)
    level = np.median(y[seen][-100:])
    # The forecast with a planned decay ends lower than the schedule-free one, by a prior drop of a few percent (its
    # mean grows with the observed log-log slope, here about 0.05, and is capped).
    assert 0.01 * level < flat.final - with_schedule.final < 0.15 * level


def test_unseen_cosine_decay_is_forecast_better_with_the_cosine_hypothesis():
    import curvecast.forecasting.hypotheses as hypotheses_module

    rng = np.random.default_rng(7)
    horizon = 4000
    lrs = 0.5 * (1.0 + np.cos(np.pi * np.arange(horizon + 1) / horizon))
    sched = LRSchedule(lrs)
    t = np.arange(1, horizon + 1, dtype=float)
    y = _mpl_curve(sched, t, 1.0, 1.5, 0.4, 0.5) + rng.normal(0, 0.01, t.size)
    seen = t <= 0.4 * horizon
    truth = _mpl_curve(sched, np.array([float(horizon)]), 1.0, 1.5, 0.4, 0.5)[0]
    with_guess = Forecaster().fit(t[seen], y[seen], horizon=horizon)
    old = hypotheses_module.COSINE_REACH
    try:
        hypotheses_module.COSINE_REACH = (1.0, 0.0)  # an empty range: no prefix gets the cosine hypothesis
        without = Forecaster().fit(t[seen], y[seen], horizon=horizon)
    finally:
        hypotheses_module.COSINE_REACH = old
    assert abs(with_guess.final / truth - 1) < abs(without.final / truth - 1)
    assert "mpl-cosine-guess" in with_guess.model


def test_bent_annealing_response_is_forecast_once_the_decay_is_seen():
    # A loss whose annealing drop grows like 1 - sqrt(LR) (steeper as the LR nears zero, as in long vision runs):
    # with 60 % of a cosine decay seen, the bent members must forecast the end better than the linear response alone.
    import curvecast.forecasting.hypotheses as hypotheses_module

    rng = np.random.default_rng(11)
    horizon = 8000
    lrs = 0.5 * (1.0 + np.cos(np.pi * np.arange(horizon + 1) / horizon))
    sched, bent = LRSchedule(lrs), LRSchedule(np.sqrt(lrs))
    t = np.arange(1, horizon + 1, dtype=float)
    clean = 0.6 + 5.0 * sched.s1(t) ** -0.4 - 0.3 * bent.anneal(t)
    y = clean + rng.normal(0, 0.005, t.size)
    seen = t <= 0.75 * horizon
    truth = clean[-1]
    with_bent = Forecaster().fit(t[seen], y[seen], horizon=horizon, lrs=lrs)
    old = hypotheses_module.RESPONSE_POWERS
    try:
        hypotheses_module.RESPONSE_POWERS = ()
        linear = Forecaster().fit(t[seen], y[seen], horizon=horizon, lrs=lrs)
    finally:
        hypotheses_module.RESPONSE_POWERS = old
    assert "mpl-bent" in with_bent.model
    assert abs(with_bent.final / truth - 1) < 0.5 * abs(linear.final / truth - 1)
    assert abs(with_bent.final / truth - 1) < 0.03


def test_annealing_prior_follows_the_slope_projected_to_the_decay_start():
    # Early in a run the loss falls steeply; the cooldown's drop follows how fast it will fall when the decay starts,
    # so the slope behind the prior is scaled down by (decay start / last step)^-alpha.
    from curvecast.forecasting.curves import MPL_ALPHA
    from curvecast.forecasting.fit_context import log_slope

    rng = np.random.default_rng(12)
    horizon = 5000
    lrs = _wsd(horizon)
    t = np.arange(1, horizon + 1, dtype=float)
    y = _mpl_curve(LRSchedule(lrs), t, 2.5, 6.0, 0.4, 0.1) + rng.normal(0, 0.01, t.size)
    seen = t <= 0.1 * horizon
    f = Forecaster().fit(t[seen], y[seen], horizon=horizon, lrs=lrs)
    start = 0.7 * horizon  # the decay's first step
    fitted = f.diagnostics
    assert fitted.slope == pytest.approx(
        log_slope(fitted.binned) * (start / fitted.binned.steps[-1]) ** -MPL_ALPHA, rel=0.01
    )
    truth = _mpl_curve(LRSchedule(lrs), np.array([float(horizon)]), 2.5, 6.0, 0.4, 0.1)[0]
    assert f.final == pytest.approx(truth, rel=0.03)


def test_bent_response_gets_no_say_when_the_linear_response_forecasts_the_tail_better():
    from curvecast.forecasting.hypotheses import prior_weights

    rng = np.random.default_rng(4)
    horizon = 4000
    sched = LRSchedule(_wsd(horizon))
    t = np.arange(1, horizon + 1, dtype=float)
    y = _mpl_curve(sched, t, 2.5, 1.2, 0.45, 0.25) + rng.normal(0, 0.02, t.size)
    seen = t <= 0.95 * horizon  # most of the decay seen: the prior-free members compete
    fc = Forecaster()
    f = fc.fit(t[seen], y[seen], horizon=horizon, lrs=_wsd(horizon))
    assert "mpl-free" in f.model or "mpl-shaped" in f.model  # a prior-free member has its say
    assert "mpl-bent" not in f.model
    truth = _mpl_curve(sched, np.array([float(horizon)]), 2.5, 1.2, 0.45, 0.25)[0]
    assert f.final == pytest.approx(truth, rel=0.002)
    names = ["mpl", "mpl-free", "mpl-bent0.5", "mpl-cosine-guess"]
    assert list(prior_weights(names, np.array([0.02, 0.01, 0.011, 0.02]))) == [1.0, 1.0, 0.0, 1.0]
    assert prior_weights(names, np.array([0.02, 0.01, 0.009, 0.02]))[2] > 0


def test_drop_uncertainty_grows_with_the_slope_of_a_steep_loss():
    # A loss still falling steeply (log-log slope ~0.3, like vision runs) gets a wider interval for the coming drop than
    # the LM-calibrated prior alone would give; a shallow LM-like loss gets a narrower one.
    import curvecast.forecasting.sized_forecast as sizing_module

    horizon = 6000
    lrs = _wsd(horizon)
    t = np.arange(1, horizon + 1, dtype=float)
    seen = t <= 0.3 * horizon
    rng = np.random.default_rng(13)
    widths = {}
    for name, (l0, a) in {"steep": (0.05, 3.0), "shallow": (2.5, 1.0)}.items():
        y = _mpl_curve(LRSchedule(lrs), t, l0, a, 0.4, 0.0) * np.exp(rng.normal(0, 0.003, t.size))
        for scaled in (True, False):
            old = sizing_module.ANNEAL_SD_RANGE
            try:
                if not scaled:
                    sizing_module.ANNEAL_SD_RANGE = (1.0, 1.0)
                fc = Forecaster()
                lo, hi = fc.fit(t[seen], y[seen], horizon=horizon, lrs=lrs).interval(0.8)
            finally:
                sizing_module.ANNEAL_SD_RANGE = old
            widths[name, scaled] = hi / lo
    assert widths["steep", True] > widths["steep", False]
    assert widths["shallow", True] < widths["shallow", False]


def test_recency_weights_keep_an_early_transient_from_pulling_a_short_prefix():
    import curvecast.forecasting.family_fit as family_fit_module

    horizon = 4000
    lrs = _wsd(horizon)
    t = np.arange(1, horizon + 1, dtype=float)
    clean = _mpl_curve(LRSchedule(lrs), t, 2.8, 4.0, 0.4, 0.1)
    rng = np.random.default_rng(15)
    y = clean * (1 + 0.15 * np.exp(-t / 150)) * np.exp(rng.normal(0, 0.005, t.size))  # a transient above the law
    seen = t <= 0.1 * horizon
    errors = {}
    for recency in (family_fit_module.RECENCY, 0.0):
        old = family_fit_module.RECENCY
        try:
            family_fit_module.RECENCY = recency
            errors[recency] = abs(Forecaster().fit(t[seen], y[seen], horizon=horizon, lrs=lrs).final / clean[-1] - 1)
        finally:
            family_fit_module.RECENCY = old
    assert family_fit_module.RECENCY > 0
    assert errors[family_fit_module.RECENCY] < errors[0.0]


def test_mpl_with_fitted_shape_joins_once_a_quarter_of_the_drop_is_observed():
    horizon = 4000
    schedule = LRSchedule(_wsd(horizon, decay_frac=0.4))
    t = np.arange(1, horizon + 1, dtype=float)
    shape = (3.0, 1.0, 0.3)  # a response that saturates much faster than the default constants
    y = 2.0 + 8.0 * schedule.s1(t) ** -0.4 - 0.5 * schedule.anneal(t, shape=shape)
    y += np.random.default_rng(3).normal(0.0, 0.002, t.size)
    fc = Forecaster()
    early = fc.fit(t[:2600], y[:2600], horizon=horizon, lrs=schedule.u)  # 5 % of the drop seen: no shaped member
    assert early.ok
    assert "mpl-shaped" not in early.model
    late = fc.fit(t[:3000], y[:3000], horizon=horizon, lrs=schedule.u)  # a quarter of the drop seen
    assert late.ok
    assert any(f.family.name == "mpl-shaped" for _, f in late.diagnostics.members)
    shaped = next(f for _, f in late.diagnostics.members if f.family.name == "mpl-shaped")
    assert shaped(np.array([float(horizon)]))[0] == pytest.approx(y[-1], rel=0.01)
    assert late.final == pytest.approx(y[-1], rel=0.01)


def test_holdout_weights_are_sharper_without_a_planned_schedule():
    from curvecast.forecasting.hypotheses import holdout_weights

    errors = np.array([0.01, 0.015, 0.05])
    planned = holdout_weights(["mpl", "mpl-free", "mpl-shaped"], errors, planned=True)
    unplanned = holdout_weights(["pow3", "pow4", "janoschek"], errors, planned=False)
    assert planned[0] == unplanned[0] == 1.0
    assert unplanned[1] < planned[1]  # a member 1.5x worse on the tail keeps less say without a schedule
    assert planned[2] == unplanned[2] == 0.0  # 5x worse: no say either way


def test_loglog_family_joins_only_for_later_prefixes_without_a_schedule():
    from curvecast.forecasting.hypotheses import LOGLOG_FROM, candidate_families

    t = np.arange(1, 1001, dtype=float)
    data = bin_curve(t, 2.0 + t**-0.5, np.ones_like(t), 256)
    for horizon, joins in ((int(1000 / 0.25), False), (int(1000 / LOGLOG_FROM), True), (2000, True)):
        families, _ = candidate_families(data, None, 800.0, 1000.0, horizon, True)
        assert ("loglog" in [f.name for f in families]) is joins
    families, _ = candidate_families(data, LRSchedule(_wsd(2000)), 800.0, 1000.0, 2000, True)
    assert "loglog" not in [f.name for f in families]


def test_a_best_member_that_ends_below_zero_leaves_the_others_their_say():
    # A loss whose fall speeds up in log time: the log-log-linear law fits the tail best but crosses zero before the
    # horizon; the forecast then rests on the members that stay positive instead of failing.
    t = np.arange(1, 1001, dtype=float)
    y = 0.3 + np.log(1.0 - 0.8 * np.log(t / 1000.0))
    f = Forecaster().fit(t, y, horizon=2400)
    assert f.ok
    assert 0 < f.final < y[-1]


def test_only_the_power_law_forecasts_far_from_the_horizon_without_a_schedule():
    from curvecast.forecasting.hypotheses import LONG_REACH, candidate_families

    t = np.arange(1, 1001, dtype=float)
    data = bin_curve(t, 2.0 + t**-0.5, np.ones_like(t), 256)
    far, _ = candidate_families(data, None, 800.0, 1000.0, int(LONG_REACH * 1000) + 1000, True)
    assert [f.name for f in far] == ["pow3"]
    near, _ = candidate_families(data, None, 800.0, 1000.0, 3000, True)
    assert {"pow3", "pow4", "janoschek", "logpower"} <= {f.name for f in near}


def test_a_constant_planned_lr_lets_the_constant_lr_families_compete_with_the_mpl():
    from curvecast.forecasting.hypotheses import CONSTANT_LR_FAMILIES, candidate_families

    t = np.arange(1, 1001, dtype=float)
    data = bin_curve(t, 2.0 + t**-0.5, np.ones_like(t), 256)
    flat, schedule = candidate_families(data, LRSchedule(np.full(2001, 3e-4)), 800.0, 1000.0, 2000, True)
    assert {"mpl", "pow3", "pow4", "janoschek", "logpower"} <= {f.name for f in flat}
    assert {f.name for f in flat} - {"mpl"} <= CONSTANT_LR_FAMILIES  # all weighted as sharply as without a schedule
    assert "mpl-cosine-guess" not in {f.name for f in flat}  # the LR is known not to decay
    assert schedule.peak_lr == 3e-4  # the planned schedule, not a guess
    decaying, _ = candidate_families(data, LRSchedule(_wsd(2000)), 800.0, 1000.0, 2000, True)
    assert not {"pow3", "pow4", "janoschek", "logpower"} & {f.name for f in decaying}


def test_a_noisy_loss_flattening_at_a_constant_lr_is_not_forecast_to_fall_on_to_zero():
    # A small run without a scheduler: its training loss levels off at 0.04 under 25 % batch noise. The MPL alone (a
    # power law in the steps, its floor free to reach 0) kept falling; with Domhan's families beside it the forecast
    # of the last step from three quarters of the run is about as good as with no schedule given at all.
    t = np.arange(1, 401, dtype=float)
    truth = 0.04 + 1.5 * (t / 5) ** -1.2
    errors, unplanned = [], []
    for seed in range(8):
        y = truth * np.exp(0.25 * np.random.default_rng(seed).standard_normal(t.size))
        planned = Forecaster().fit(t[:300], y[:300], horizon=400, lrs=np.full(401, 1e-3))
        alone = Forecaster().fit(t[:300], y[:300], horizon=400)
        errors.append(abs(planned.final / truth[-1] - 1))
        unplanned.append(abs(alone.final / truth[-1] - 1))
    assert np.median(errors) < 0.11  # 0.13 with the MPL alone
    assert np.median(errors) < 1.25 * np.median(unplanned)
