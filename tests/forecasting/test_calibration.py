"""The fitted constants: one module holds them, nothing else (no environment variable) changes a forecast."""

from pathlib import Path

import numpy as np
import pytest

import curvecast.forecasting as forecasting
from curvecast.forecasting import Forecaster, calibration


def test_no_forecasting_module_reads_the_environment():
    root = Path(forecasting.__file__).parent
    sources = {p: p.read_text() for p in root.rglob("*.py")}
    assert len(sources) > 10
    for path, text in sources.items():
        for word in ("environ", "getenv"):
            assert word not in text, f"{path.name} reads the environment ({word})"


def test_forecaster_defaults_are_the_calibrated_constants():
    f = Forecaster()
    assert (f.transient, f.holdout, f.anneal_prior) == (
        calibration.TRANSIENT,
        calibration.HOLDOUT,
        calibration.ANNEAL_PRIOR,
    )


def test_interval_scale_multiplies_the_calibrated_spread():
    t = np.arange(1, 2001, dtype=float)
    y = 2.0 + 3.0 * t**-0.4 + np.random.default_rng(0).normal(0.0, 0.01, t.size)
    base = Forecaster().fit(t, y, horizon=8000)
    wide = Forecaster(interval_scale=2.0).fit(t, y, horizon=8000)
    assert wide.final == base.final
    assert wide.log_scale == pytest.approx(2.0 * base.log_scale)


def test_an_absurdly_wide_interval_is_no_forecast():
    t = np.arange(1, 2001, dtype=float)
    y = 2.0 + 3.0 * t**-0.4
    f = Forecaster(interval_scale=1000.0).fit(t, y, horizon=8000)
    assert not f.ok
    assert f.reason.startswith("too uncertain to forecast")
    assert np.isnan(f.interval(0.8)).all()


def test_a_noisy_curve_with_a_schedule_has_its_interval_sized_apart():
    # Points scattering by more than NOISY_FROM (relative) with a planned schedule: the noisy scale, a least width of
    # NOISE_FLOOR_NOISY points' scatter; the same curve without the noise keeps the smooth curves' scale.
    horizon = 2000
    t = np.arange(1, 501, dtype=float)
    lrs = 0.5 * (1.0 + np.cos(np.pi * np.arange(horizon + 1) / horizon))
    clean = 0.5 + 3.0 * t**-0.5
    noisy = clean * np.exp(np.random.default_rng(1).normal(0.0, 0.3, t.size))
    f = Forecaster().fit(t, noisy, horizon=horizon, lrs=lrs)
    assert f.diagnostics.binned.noise > calibration.NOISY_FROM
    assert f.diagnostics.interval_scale == calibration.INTERVAL_SCALE_KNOWN_NOISY
    assert f.diagnostics.noise_floor >= calibration.NOISE_FLOOR_NOISY * f.diagnostics.binned.noise
    assert f.log_scale >= f.diagnostics.noise_floor
    smooth = Forecaster().fit(t, clean, horizon=horizon, lrs=lrs)
    assert smooth.diagnostics.binned.noise <= calibration.NOISY_FROM
    assert smooth.diagnostics.interval_scale == calibration.INTERVAL_SCALE_KNOWN


def test_a_held_back_miss_grows_with_the_reach_unless_told_not_to():
    from curvecast.forecasting.uncertainty import log_scale_parts

    def held(horizon: float, growth: float = 1.0) -> float:
        parts = log_scale_parts(
            finals=np.array([1.0]), weights=np.array([1.0]), backtest=0.1, holdout_span=300.0, first=100.0,
            last=1000.0, horizon=horizon, anneal_sd=0.0, noise=0.0, schedule_known=True, held_growth=growth,
        )  # fmt: skip
        return parts["held"]

    assert held(8000.0) == pytest.approx(2.0 * held(2828.4271247), rel=1e-6)  # linear in the reach (log-steps)
    assert held(8000.0, growth=0.0) == held(2000.0, growth=0.0) == pytest.approx(0.1)  # the miss as it is


def test_an_early_forecast_with_a_schedule_has_its_own_scale_and_counts_its_leverage():
    # From 30 of 300 steps the reach, log 10, is 0.68 of the logged span (log 30): past EARLY_FROM, the early scale and
    # a leverage part EARLY_KNOWN * reach * (reach / span)^EARLY_POWER; from 150 steps (0.14) the smooth curves' own.
    from curvecast.forecasting.uncertainty import leverage

    horizon = 300
    lrs = 0.5 * (1.0 + np.cos(np.pi * np.arange(horizon + 1) / horizon))
    t = np.arange(1, 151, dtype=float)
    y = 0.5 + 3.0 * t**-0.5
    early = Forecaster().fit(t[:30], y[:30], horizon=horizon, lrs=lrs)
    assert leverage(30.0, horizon, 1.0) == pytest.approx(np.log(10.0) / np.log(30.0))
    assert leverage(30.0, horizon, 1.0) >= calibration.EARLY_FROM > leverage(150.0, horizon, 1.0)
    d = early.diagnostics
    assert d.interval_scale == calibration.INTERVAL_SCALE_KNOWN_EARLY
    reach = np.log(horizon / d.binned.steps[-1])
    expected = calibration.EARLY_KNOWN * reach * (reach / np.log(d.binned.steps[-1])) ** calibration.EARLY_POWER
    assert d.scale_parts["early"] == pytest.approx(expected, rel=1e-6)
    later = Forecaster().fit(t, y, horizon=horizon, lrs=lrs).diagnostics
    assert later.interval_scale == calibration.INTERVAL_SCALE_KNOWN
    assert later.scale_parts["early"] == 0.0
    unplanned = Forecaster().fit(t[:30], y[:30], horizon=horizon).diagnostics  # without a schedule: as before
    assert unplanned.scale_parts["early"] == 0.0
