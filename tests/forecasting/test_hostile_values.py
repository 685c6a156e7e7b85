"""Hostile values at the forecasting API: horizons and settings that are no integers, integers too big for a float,
and LR schedules the instability monitor cannot use. Each is a clear error or a value the detectors report, never a
crash from deep inside."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from curvecast.forecasting.anomalies import AnomalyDetector, InstabilityMonitor, detect_anomalies
from curvecast.forecasting.schedule import LRSchedule

STEPS = np.arange(1, 101)
LOSS = 2.0 + 3.0 / np.sqrt(STEPS)


@pytest.mark.parametrize(
    ("horizon", "shown"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (150.5, "150.5"),
        (np.float64(np.nan), "nan"),
        (-5, "-5"),
        (-5.0, "-5.0"),
        (Fraction(301, 2), "301/2"),
    ],
)
def test_a_horizon_that_is_no_non_negative_integer_is_named(horizon, shown):
    with pytest.raises(ValueError, match=rf"^Expected `horizon` to be a non-negative integer .*, but got {shown}$"):
        Forecaster().fit(STEPS, LOSS, horizon=horizon)


def test_a_negative_horizon_is_refused_even_without_points():
    with pytest.raises(ValueError, match="Expected `horizon` to be a non-negative integer"):
        Forecaster().fit([], [], horizon=-1)


@pytest.mark.parametrize("horizon", ["150", None, True, b"150", [150]])
def test_a_horizon_that_is_no_number_is_a_type_error(horizon):
    with pytest.raises(TypeError, match=r"^Expected `horizon` to be an integer, but got "):
        Forecaster().fit(STEPS, LOSS, horizon=horizon)


@pytest.mark.parametrize("horizon", [150, np.int64(150), 150.0, np.float32(150.0), Fraction(150)])
def test_an_integral_horizon_of_any_numeric_type_is_taken(horizon):
    forecast = Forecaster().fit(STEPS, LOSS, horizon=horizon)
    assert forecast.ok
    assert forecast.horizon == 150
    assert type(forecast.horizon) is int


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_points": float("nan")}, TypeError, r"Expected `min_points` to be an integer, but got nan \(float\)"),
        ({"min_points": 5.5}, TypeError, r"Expected `min_points` to be an integer, but got 5.5 \(float\)"),
        ({"min_points": 5.0}, TypeError, r"Expected `min_points` to be an integer, but got 5.0 \(float\)"),
        ({"min_points": True}, TypeError, r"Expected `min_points` to be an integer, but got True \(bool\)"),
        ({"min_points": "5"}, TypeError, r"Expected `min_points` to be an integer, but got '5' \(str\)"),
        ({"max_bins": float("inf")}, TypeError, r"Expected `max_bins` to be an integer, but got inf \(float\)"),
        ({"max_bins": 64.0}, TypeError, r"Expected `max_bins` to be an integer, but got 64.0 \(float\)"),
        ({"anneal_prior": float("nan")}, ValueError, "Expected `anneal_prior` to be finite, but got nan"),
        ({"anneal_prior": float("inf")}, ValueError, "Expected `anneal_prior` to be finite, but got inf"),
        ({"anneal_prior_sd": float("inf")}, ValueError, "Expected `anneal_prior_sd` to be finite, but got inf"),
        ({"interval_scale": float("nan")}, ValueError, "Expected `interval_scale` to be finite, but got nan"),
        ({"transient": float("nan")}, ValueError, r"`transient` must lie in \[0, 0.9\), but got nan"),
        ({"holdout": float("inf")}, ValueError, r"`holdout` must lie in \[0, 0.9\), but got inf"),
    ],
)
def test_forecaster_settings_that_are_no_counts_or_not_finite_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        Forecaster(**kwargs)


def test_numpy_integer_settings_are_taken():
    forecast = Forecaster(min_points=np.int64(5), max_bins=np.int32(64)).fit(STEPS, LOSS, horizon=200)
    assert forecast.ok


# --- integers past the float range ------------------------------------------------------------------------------


@pytest.mark.parametrize(("big", "shown"), [(10**400, "inf"), (-(10**400), "-inf"), (Fraction(10**400), "inf")])
def test_the_detector_reports_an_integer_past_the_float_range_as_a_non_finite_value(big, shown):
    det = AnomalyDetector()
    for t in range(50):
        assert det.update(t, float(LOSS[t])) == []
    events = det.update(50, big)
    assert [(e.kind, e.step, e.severity) for e in events] == [("nonfinite", 50, "critical")]
    assert math.isinf(events[0].value)
    assert f"became {shown} at step 50" in events[0].message


def test_an_integer_past_the_float_range_as_the_first_value_is_reported():
    assert [e.kind for e in AnomalyDetector().update(0, 10**400)] == ["nonfinite"]


@pytest.mark.parametrize(
    "values",
    [[1.0, 10**400, 2.0], [1, 10**400, 2], np.array([1.0, 10**400, 2.0], dtype=object), (3, -(10**400), 1)],
    ids=["floats", "ints", "object-array", "tuple"],
)
def test_detect_anomalies_reports_an_integer_past_the_float_range(values):
    events = detect_anomalies([0, 1, 2], values)
    assert [(e.kind, e.step) for e in events] == [("nonfinite", 1)]
    assert math.isinf(events[0].value)


def test_detect_anomalies_still_names_what_is_no_number_among_big_integers():
    with pytest.raises(TypeError, match=r"Expected `values` to be a real number, but got 'a' \(str\)"):
        detect_anomalies([0, 1, 2], [1.0, 10**400, "a"])


def test_the_instability_monitor_takes_an_integer_past_the_float_range():
    mon = InstabilityMonitor()
    for t in range(30):
        mon.update(t, loss=float(LOSS[t]), grad_norm=0.5)
    events = mon.update(30, loss=10**400, grad_norm=10**400)
    assert sorted((e.kind, e.series) for e in events) == [("nonfinite", "grad_norm"), ("nonfinite", "loss")]


def test_the_forecaster_drops_an_integer_past_the_float_range_like_any_non_finite_value():
    values = [*LOSS[:-1].tolist(), 10**400]
    forecast = Forecaster().fit(STEPS, values, horizon=200)
    reference = Forecaster().fit(STEPS, [*LOSS[:-1].tolist(), math.inf], horizon=200)
    assert forecast.ok
    assert forecast.final == reference.final
    with pytest.raises(ValueError, match="`steps` must be finite, but got inf"):
        Forecaster().fit([1, 2, 10**400], [3.0, 2.0, 1.0], horizon=200)


@pytest.mark.parametrize("big", [1e155, 1e300, np.finfo(np.float64).max, -1e300])
def test_a_lone_value_too_large_to_square_is_dropped_like_an_inf(big):
    values = LOSS.copy()
    values[50] = big  # squared in the fit it overflowed, and the whole forecast was refused
    forecast = Forecaster().fit(STEPS, values, horizon=200)
    values[50] = math.inf
    assert forecast.ok, forecast.reason
    assert forecast.final == Forecaster().fit(STEPS, values, horizon=200).final


def test_values_all_too_large_to_square_are_still_refused_with_the_reason():
    forecast = Forecaster().fit(STEPS, LOSS * 1e300, horizon=200)
    assert not forecast.ok
    assert forecast.reason == "the values are too large to forecast in floating point"


def test_a_horizon_past_the_float_range_is_out_of_reach_not_a_numerical_failure():
    forecast = Forecaster().fit(STEPS, LOSS, horizon=10**400)
    assert not forecast.ok
    assert forecast.reason == "the horizon is more than 1e308 times the last step, past the 1000x forecast"


def test_a_spike_near_the_float_limit_is_described_in_a_few_digits():
    values = [float(x) for x in LOSS]
    values[80] = 1e300
    (spike,) = detect_anomalies(STEPS, values)
    assert spike.kind == "spike"
    # In fixed decimals the ratio printed all 300 of its digits.
    assert "spiked to 1e+300 at step 81, 4.29e+299x the expected (2.333)" in spike.message


# --- arrays and arguments that hold no real numbers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "bad", "error", "match"),
    [
        ("values", [*LOSS[:-1].tolist(), "1.5"], TypeError, r"`values` to hold real numbers, but got dtype <U"),
        ("values", [*LOSS[:-1].tolist(), 10**400, "1.5"], TypeError, r"`values` to be a real number, but got '1.5'"),
        ("values", LOSS.astype(str), TypeError, r"`values` to hold real numbers, but got dtype <U"),
        ("values", LOSS + 1j, TypeError, r"`values` to hold real numbers, but got dtype complex128"),
        ("values", [[1.0], [1.0, 2.0], *LOSS[2:].tolist()], ValueError, r"`values` .* rows differ in length"),
        ("values", [*LOSS[:-1].tolist(), None], TypeError, r"`values` to be a real number, but got None"),
        ("steps", [str(s) for s in STEPS], TypeError, r"`steps` to hold real numbers, but got dtype <U"),
        ("steps", STEPS.astype("datetime64[s]"), TypeError, r"`steps` to hold real numbers, but got dtype datetime"),
        ("lrs", "cosine", TypeError, r"`lrs` to hold real numbers, but got dtype <U6"),
        ("counts", [b"1"] * len(STEPS), TypeError, r"`counts` to hold real numbers, but got dtype \|S1"),
    ],
)
def test_an_array_of_things_that_are_no_real_numbers_is_named(argument, bad, error, match):
    arguments = {"steps": STEPS, "values": LOSS, "horizon": 200, argument: bad}
    with pytest.raises(error, match=match):
        Forecaster().fit(**arguments)


def test_masked_values_are_missing_values():
    values = np.ma.masked_array(LOSS * 1e6, mask=STEPS % 7 == 0)  # the masked entries hold garbage
    forecast = Forecaster().fit(STEPS, values, horizon=200)
    expected = Forecaster().fit(STEPS, np.where(STEPS % 7 == 0, np.nan, LOSS * 1e6), horizon=200)
    assert forecast.ok
    assert forecast.final == expected.final


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: f.interval("0.8"), TypeError, r"Expected `p` to be a real number, but got '0.8' \(str\)"),
        (lambda f: f.interval(None), TypeError, r"Expected `p` to be a real number, but got None"),
        (lambda f: f.prob_below("2"), TypeError, r"Expected `target` to be a real number, but got '2' \(str\)"),
        (lambda f: f.step_to_reach(None), TypeError, r"Expected `target` to be a real number, but got None"),
        (lambda f: f.predict("x"), TypeError, r"Expected `at_steps` to hold real numbers, but got dtype <U1"),
        (lambda f: f.predict([1, "a"]), TypeError, r"Expected `at_steps` to hold real numbers"),
    ],
)
def test_forecast_questions_that_are_no_numbers_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call(Forecaster().fit(STEPS, LOSS, horizon=200))


def test_forecast_questions_past_the_float_range_are_answered():
    forecast = Forecaster().fit(STEPS, LOSS, horizon=200)
    assert math.isnan(forecast.prob_below(10**400))  # an OverflowError before: no finite target, no probability
    assert forecast.step_to_reach(-(10**400)) is None


def test_predict_at_a_step_that_is_no_step_is_nan_without_a_warning():
    lrs = np.r_[np.linspace(0.0, 1e-3, 11), np.linspace(1e-3, 0.0, 190)]  # a schedule-aware model indexes by step
    forecast = Forecaster().fit(STEPS, LOSS, horizon=200, lrs=lrs)
    assert forecast.ok
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = forecast.predict([np.nan, 150.0, np.inf])
    assert math.isnan(predicted[0])
    assert predicted[1] == forecast.predict(150.0)[0]
    assert math.isnan(predicted[2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transient": "0.1"}, r"Expected `transient` to be a real number, but got '0.1' \(str\)"),
        ({"holdout": 1 + 2j}, r"Expected `holdout` to be a real number, but got \(1\+2j\) \(complex\)"),
        ({"interval_scale": None}, r"Expected `interval_scale` to be a real number, but got None"),
        ({"anneal_prior": b"1"}, r"Expected `anneal_prior` to be a real number"),
    ],
)
def test_forecaster_settings_that_are_no_numbers_are_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Forecaster(**kwargs)


def test_a_forecaster_setting_past_the_float_range_is_not_finite():
    with pytest.raises(ValueError, match=r"Expected `interval_scale` to be finite, but got 1000000"):
        Forecaster(interval_scale=10**400)


@pytest.mark.parametrize("bounds", [("a", "b"), (0, "1"), (0, [1])])
def test_bounds_that_are_no_numbers_are_named(bounds):
    with pytest.raises(TypeError, match=r"Expected `bounds` to be a real number, but got "):
        Forecaster().fit(STEPS, LOSS, horizon=200, bounds=bounds)


# --- LR schedules the instability monitor cannot use ----------------------------------------------------------


def _feed(mon: InstabilityMonitor, n: int = 400) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(0)
    events = []
    for t in range(n):
        loss = (2.0 + 6.0 / (1 + t / 50)) * math.exp(0.02 * rng.standard_normal())
        grad = 0.8 * math.exp(0.1 * rng.standard_normal()) * (20.0 if t == 300 else 1.0)
        events += mon.update(t, loss=loss * (1.8 if t == 301 else 1.0), grad_norm=grad)
    return [(e.kind, e.series, e.step) for e in events]


UNUSABLE = {
    "all zeros": [0.0] * 400,
    "one zero": [0.0],
    "integer zeros": np.zeros(400, dtype=np.int64),
    "knots at zero": LRSchedule.from_knots([0, 399], [0.0, 0.0]),
    "empty": [],
    "negative": [1e-3] * 200 + [-1e-3] * 200,
    "all negative": [-1e-3] * 400,
    "nan": [1e-3] * 100 + [math.nan] + [1e-3] * 299,
    "inf": [math.inf] * 400,
}


@pytest.mark.parametrize("lrs", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_the_instability_monitor_skips_a_schedule_it_cannot_use(lrs):
    mon = InstabilityMonitor(lrs=lrs)
    assert mon.loss.schedule is None
    assert _feed(mon) == _feed(InstabilityMonitor())


def test_a_schedule_that_starts_at_zero_is_used():
    lrs = np.r_[0.0, np.linspace(1e-4, 1e-3, 49), np.full(351, 1e-3)]  # warmup from an LR of 0
    mon = InstabilityMonitor(lrs=lrs)
    assert mon.loss.schedule is not None
    assert mon.loss.schedule.peak_lr == pytest.approx(1e-3)
    assert ("instability_risk", "loss", 301) in _feed(mon)
