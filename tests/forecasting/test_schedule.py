"""LRSchedule in knots answers as the dense one: exactly for the same interpolated LRs, within the sampling's error
for a schedule sampled from a function; long schedules stay small and fit fast."""

import pickle

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from curvecast.forecasting.knots import MAX_SAMPLES, SAMPLE_GRID, SAMPLE_RTOL, sample_knots
from curvecast.forecasting.preprocess import check_inputs
from curvecast.forecasting.schedule import (
    MAX_DENSE_STEPS,
    STEP_DROP_FROM,
    LRSchedule,
)


def _random_schedules(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        size = int(rng.integers(1, 40))
        kind = rng.integers(0, 3)
        if kind == 0:
            yield rng.random(size)
        elif kind == 1:
            yield np.round(rng.random(size) * 3) / 3  # flats, jumps, zeros
        else:
            walk = np.cumsum(rng.normal(size=size))
            yield walk - walk.min()


def _assert_same_answers(dense: LRSchedule, knots: LRSchedule) -> None:
    horizon = dense.horizon
    assert (len(knots), knots.horizon, knots.peak_lr, knots.peak_step) == (
        len(dense),
        horizon,
        dense.peak_lr,
        dense.peak_step,
    )
    steps = range(-2, horizon + 3)
    for question in ("lr", "fraction_of_peak"):  # rtol: np.interp (a test's dense schedule) rounds its own way
        np.testing.assert_allclose(
            [getattr(knots, question)(t) for t in steps], [getattr(dense, question)(t) for t in steps], rtol=1e-12
        )
    assert [knots.drop_ahead(t) for t in steps] == [dense.drop_ahead(t) for t in steps]
    # A step drop ahead: the same wherever the answer does not sit on a threshold (where rounding decides it).
    loose, tight = ({"factor": 0.5 * (1 + e), "least": STEP_DROP_FROM * (1 - e)} for e in (1e-9, -1e-9))
    clear = [t for t in steps if dense.step_drop_ahead(t, **loose) == dense.step_drop_ahead(t, **tight)]
    assert [knots.step_drop_ahead(t) for t in clear] == [dense.step_drop_ahead(t) for t in clear]
    for after in range(-1, horizon + 2, max(1, horizon // 6)):
        assert [knots.rose_between(after, t) for t in steps] == [dense.rose_between(after, t) for t in steps]
    # Off the integers: the drops act at integer steps, where rounding could put a 1e-15 difference either side.
    t = np.linspace(-1, horizon + 1, 57) + 0.37
    np.testing.assert_allclose(knots.area(t), dense.area(t), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(knots.s1(t), dense.s1(t), rtol=1e-10)
    np.testing.assert_allclose(knots.drop, dense.drop, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(knots.drop_step, dense.drop_step, rtol=1e-9)
    np.testing.assert_allclose(knots.drop_lr, dense.drop_lr, rtol=1e-9)
    np.testing.assert_allclose(knots.anneal(t), dense.anneal(t), rtol=1e-6, atol=1e-10)
    for step in (0.5, horizon / 3 + 0.5, horizon - 0.5):
        assert knots.total_drop_after(step) == pytest.approx(dense.total_drop_after(step), abs=1e-10)


def test_a_knot_at_every_step_answers_as_the_dense_schedule():
    for lrs in _random_schedules(200):
        _assert_same_answers(LRSchedule(lrs), LRSchedule.from_knots(np.arange(len(lrs)), lrs))
    warmup_cosine = np.r_[np.linspace(0, 1, 100), 0.5 * (1 + np.cos(np.pi * np.arange(1900) / 1900))]
    _assert_same_answers(LRSchedule(warmup_cosine), LRSchedule.from_knots(np.arange(2000), warmup_cosine))


def test_knots_are_linear_between_them_at_the_integer_steps():
    rng = np.random.default_rng(3)
    for _ in range(100):
        m = int(rng.integers(2, 8))
        steps = np.r_[0, np.sort(rng.choice(np.arange(1, 300), m - 1, replace=False))]
        lrs = rng.random(m) * (rng.random(m) > 0.2)  # zeros too: warmup from 0, a stop at 0
        dense = LRSchedule(np.interp(np.arange(steps[-1] + 1), steps, lrs))
        _assert_same_answers(dense, LRSchedule.from_knots(steps, lrs))


def _cosine(horizon: int, floor: float = 0.1):
    return lambda t: 3e-4 * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * np.asarray(t) / horizon)))


def test_a_long_cosine_in_knots_agrees_with_the_dense_one():
    horizon = 3_000_000
    cosine = _cosine(horizon)
    dense = LRSchedule(cosine(np.arange(horizon + 1)))
    knots = LRSchedule.from_function(cosine, horizon)
    assert not knots.dense
    assert len(knots) == len(dense)
    # A bounded number of knots: the first grid and one midpoint in each of its intervals (a cosine is smooth).
    assert len(knots.knots()[0]) <= 2 * SAMPLE_GRID + 1
    steps = np.sort(np.random.default_rng(0).integers(0, horizon + 1, 2000))
    # Linear between knots h = horizon / 8192 apart, a cosine is off by at most (pi h / horizon)^2 / 8 of its swing:
    # 1.8e-8; the bound asked is a few times that.
    lr_dense = np.array([dense.lr(t) for t in steps])
    np.testing.assert_allclose([knots.lr(t) for t in steps], lr_dense, rtol=0, atol=5e-8 * dense.peak_lr)
    # A drop ahead (the LR later halves): identical except within that error of where it stops holding.
    clear = np.abs(lr_dense - 2 * dense.lr(horizon)) > 1e-6 * dense.peak_lr
    assert [knots.drop_ahead(t) for t in steps[clear]] == [dense.drop_ahead(t) for t in steps[clear]]
    # The area sums that error: the same relative bound.
    t = steps + 0.5
    np.testing.assert_allclose(knots.area(t), dense.area(t), rtol=5e-8)
    # LD: same chunks (equal counts of per-step drops), each drop's position a |drop|-weighted mean of its steps;
    # within a knot interval the knots' per-step drops are equal where the dense ones vary by ~1e-4, which moves a
    # chunk's position by a few of its ~5,900 steps. The response G barely changes over a few steps: 1e-5 of LD's
    # range (~1) is ample, and far below what the fit resolves.
    assert len(knots.drop) == len(dense.drop) == 512
    np.testing.assert_allclose(knots.drop, dense.drop, atol=1e-7)
    np.testing.assert_allclose(knots.drop_step, dense.drop_step, atol=10.0)
    np.testing.assert_allclose(knots.anneal(t), dense.anneal(t), atol=1e-5)
    assert knots.total_drop_after(horizon / 2) == pytest.approx(dense.total_drop_after(horizon / 2), abs=1e-6)


def test_a_knot_schedule_has_no_per_step_arrays():
    knots = LRSchedule.from_function(_cosine(10**9), 10**9)
    for name in ("lrs", "u", "cum"):
        with pytest.raises(AttributeError, match="knots"):
            getattr(knots, name)
    restored = pickle.loads(pickle.dumps(knots))  # a Forecast pickles its schedule
    assert restored.lr(123_456_789) == knots.lr(123_456_789)


def test_both_forms_are_one_lr_schedule_and_keep_their_form():
    dense, knots = LRSchedule([1.0, 0.5, 0.25]), LRSchedule.from_knots([0, 2], [1.0, 0.25])
    for schedule, is_dense in ((dense, True), (knots, False)):
        assert isinstance(schedule, LRSchedule)
        bent = schedule.response(0.5)
        assert isinstance(bent, LRSchedule)
        assert (schedule.dense, bent.dense) == (is_dense, is_dense)
        assert bent.lr(2) == pytest.approx(0.5)


def test_from_function_is_dense_and_exact_up_to_the_dense_limit():
    horizon = 5000
    cosine = _cosine(horizon)
    built = LRSchedule.from_function(cosine, horizon)
    assert built.dense
    np.testing.assert_array_equal(built.lrs, cosine(np.arange(horizon + 1)))
    assert not LRSchedule.from_function(cosine, MAX_DENSE_STEPS).dense


def test_sample_knots_puts_each_jump_between_two_knots_one_step_apart():
    drops = [123_457, 400_000, 987_654]
    step_lr = lambda t: 0.1 * 0.5 ** np.searchsorted(drops, t, side="right")
    knots = sample_knots(step_lr, 0, 10**6)
    schedule = LRSchedule.from_knots(knots.steps, knots.lrs)
    for drop in drops:
        assert schedule.lr(drop - 1) == step_lr(drop - 1)
        assert schedule.lr(drop) == step_lr(drop)
    assert knots.evaluations < 3 * SAMPLE_GRID


def test_sample_knots_says_when_a_schedule_changes_too_often_or_is_no_lr():
    sawtooth = lambda t: (np.asarray(t) % 1000) / 1000.0  # a million restarts
    assert sample_knots(sawtooth, 0, 10**9) is None
    with pytest.raises(ValueError, match="not finite"):
        sample_knots(lambda t: np.where(t > 500, np.nan, 1.0), 0, 10**6)


def test_the_sampling_tolerance_bounds_the_error_between_knots():
    rng = np.random.default_rng(5)
    for _ in range(20):
        cut, level = int(rng.integers(1, 10**5)), float(rng.random())
        shape = lambda t, c=cut, v=level: np.where(t < c, 1.0, v) * (1 + 0.3 * np.sin(np.asarray(t) / 7e3))
        knots = sample_knots(shape, 0, 10**5)
        schedule = LRSchedule.from_knots(knots.steps, knots.lrs)
        t = np.arange(10**5 + 1)
        error = np.abs(schedule.u_at(t) * schedule.peak_lr - shape(t)).max()
        assert error <= knots.tolerance
        assert knots.tolerance == pytest.approx(2 * SAMPLE_RTOL * knots.lrs.max())


def test_the_bent_response_keeps_the_form():
    lrs = np.r_[np.linspace(0.1, 1, 50), np.linspace(1, 0, 951)]
    dense, knots = LRSchedule(lrs), LRSchedule.from_knots([0, 49, 1000], [0.1, 1.0, 0.0])
    np.testing.assert_array_equal(dense.response(0.5).lrs, dense.u**0.5)
    bent = knots.response(0.5)
    assert not bent.dense
    assert (bent.lr(49), bent.lr(1000)) == (1.0, 0.0)


def test_fit_takes_an_lr_schedule_and_gives_the_forecast_of_its_array():
    horizon = 4000
    rng = np.random.default_rng(0)
    lrs = np.r_[np.linspace(0, 1, 200), 0.5 * (1 + np.cos(np.pi * np.arange(3801) / 3800))] * 1e-3
    schedule = LRSchedule(lrs)
    t = np.arange(1, 1800, dtype=float)
    y = 2.5 + 5 * schedule.s1(t) ** -0.4 - 0.2 * schedule.anneal(t) + rng.normal(0, 0.01, t.size)
    from_array = Forecaster().fit(t, y, horizon=horizon, lrs=lrs)
    from_schedule = Forecaster().fit(t, y, horizon=horizon, lrs=schedule)
    assert from_schedule.final == from_array.final
    assert from_schedule.interval(0.8) == from_array.interval(0.8)
    with pytest.raises(ValueError, match="0..horizon"):
        check_inputs(t, y, horizon + 1, schedule, None)
    # An all-zero schedule is no schedule: the forecast goes on without it, as with a zero array.
    zeros = Forecaster().fit(t, y, horizon=horizon, lrs=LRSchedule(np.zeros(horizon + 1)))
    assert zeros.final == Forecaster().fit(t, y, horizon=horizon).final


def test_a_billion_step_cosine_fits_from_its_knots():
    horizon = 10**9
    schedule = LRSchedule.from_function(_cosine(horizon, floor=0.0), horizon)
    t = np.linspace(1_000, 3e8, 5000).round()
    y = 2.0 + 8.0 * schedule.s1(t) ** -0.4 - 0.3 * schedule.anneal(t)
    forecast = Forecaster().fit(t, y, horizon=horizon, lrs=schedule)
    truth = 2.0 + 8.0 * schedule.s1(np.array([horizon]))[0] ** -0.4 - 0.3 * schedule.anneal(np.array([horizon]))[0]
    assert forecast.ok
    assert forecast.final == pytest.approx(truth, rel=0.01)
    lo, hi = forecast.interval(0.8)
    assert lo < truth < hi
    # Without a schedule, the cosine-to-zero hypothesis at this horizon is built in knots too (8 GB dense).
    mid = np.linspace(1_000, 3e8, 5000).round()
    assert Forecaster().fit(mid, y, horizon=horizon).ok


def test_knot_schedules_are_checked():
    with pytest.raises(ValueError, match="start at 0 and increase"):
        LRSchedule.from_knots([1, 5], [0.1, 0.2])
    with pytest.raises(ValueError, match="start at 0 and increase"):
        LRSchedule.from_knots([0, 5, 5], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="integers"):
        LRSchedule.from_knots([0, 2.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite and non-negative"):
        LRSchedule.from_knots([0, 5], [0.1, -0.2])
    single = LRSchedule.from_knots([0], [0.3])
    assert (len(single), single.lr(7), single.drop_ahead(0), single.fraction_of_peak(0)) == (1, 0.3, False, 1.0)
    assert MAX_SAMPLES >= 4 * SAMPLE_GRID  # room to bisect a few dozen jumps after the first grid


def test_a_step_schedules_drops_lie_ahead_until_its_last_and_a_cosines_end_is_none():
    step_lr = np.full(1501, 0.1)
    for step in (400, 800, 1200):
        step_lr[step:] *= 0.3
    t = np.arange(1501)
    cosine = 0.5 * 0.1 * (1.0 + np.cos(np.pi * t / 1500))  # to zero: its last steps fall by far more than half
    for lrs in (step_lr, cosine):
        dense = LRSchedule(lrs)
        knots = LRSchedule.from_knots(t, lrs)
        for schedule in (dense, knots):
            ahead = [schedule.step_drop_ahead(step) for step in (0, 399, 400, 700, 1199, 1200, 1500)]
            expected = [True, True, True, True, True, False, False] if lrs is step_lr else [False] * 7
            assert ahead == expected
