"""Hostile values at the forecasting API: horizons and settings that are no integers, integers too big for a float,
and LR schedules the instability monitor cannot use. Each is a clear error or a value the detectors report, never a
crash from deep inside."""

from __future__ import annotations

import math
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
