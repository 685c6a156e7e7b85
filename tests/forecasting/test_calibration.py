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
