"""Forecasts on the real training curves of ../shared/data/curves (skipped when the folder is absent)."""

import json
from pathlib import Path

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from real_curve import load_train_curve

CURVES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "curves"
pytestmark = pytest.mark.skipif(not CURVES.is_dir(), reason=f"real curves not found at {CURVES}")


def _runs(prefix: str):
    if not CURVES.is_dir():
        return []
    out = []
    for p in sorted(CURVES.glob(f"{prefix}*.csv")):
        meta = json.loads(p.with_suffix(".json").read_text())
        if not meta["diverged"]:
            out.append(p)
    return out


def _end(values):
    k = int(np.clip(len(values) // 20, 5, 200))
    return float(np.polyval(np.polyfit(np.arange(k), values[-k:], 1), k - 1))


def test_llm_curves_forecast_from_half_the_run():
    errors = []
    for path in _runs("mng__")[::3]:
        steps, values, horizon, lrs = load_train_curve(path)
        seen = steps <= 0.5 * horizon
        f = Forecaster().fit(steps[seen], values[seen], horizon=horizon, lrs=lrs)
        assert f.ok, f.reason
        assert "mpl(" in f.model
        errors.append(abs(f.final / _end(values) - 1))
    assert len(errors) >= 5
    assert np.median(errors) < 0.03


def test_the_planned_decay_lowers_the_llm_forecast():
    steps, values, horizon, lrs = load_train_curve(_runs("mng__2024-12-04_ValueEmbed")[0])
    seen = steps <= 0.3 * horizon
    aware = Forecaster().fit(steps[seen], values[seen], horizon=horizon, lrs=lrs)
    blind = Forecaster().fit(steps[seen], values[seen], horizon=horizon)
    truth = _end(values)
    assert abs(aware.final / truth - 1) < abs(blind.final / truth - 1)
    assert aware.final < blind.final


def test_every_sparse_eval_curve_gets_a_sane_forecast():
    runs = _runs("algoperf__")
    assert runs
    for path in runs:
        steps, values, horizon, lrs = load_train_curve(path)
        seen = steps <= 0.5 * horizon
        f = Forecaster().fit(steps[seen], values[seen], horizon=horizon, lrs=lrs)
        if seen.sum() < 5:
            assert not f.ok
            assert "too few finite points" in f.reason
            continue
        assert f.ok, (path.name, f.reason)
        lo, hi = f.interval(0.8)
        assert 0 < lo < f.final < hi
        assert f.final < 1.5 * values[seen].max()


def test_schedule_free_runs_from_three_quarters():
    errors = []
    for path in _runs("algoperf__v05_schedule_free_adamw_s0_fastmri"):
        steps, values, horizon, lrs = load_train_curve(path)
        seen = steps <= 0.75 * horizon
        f = Forecaster().fit(steps[seen], values[seen], horizon=horizon, lrs=lrs)
        errors.append(abs(f.final / values[-1] - 1))
    assert np.median(errors) < 0.02


def test_vision_and_graph_runs_with_a_schedule_from_three_quarters():
    # Their loss keeps falling steeply as the cosine LR nears zero: the bent-response members must catch it.
    errors = []
    for path in _runs("algoperf__"):
        steps, values, horizon, lrs = load_train_curve(path)
        seen = steps <= 0.75 * horizon
        if lrs is None or seen.sum() < 20:
            continue
        f = Forecaster().fit(steps[seen], values[seen], horizon=horizon, lrs=lrs)
        errors.append(abs(f.final / values[-1] - 1))
    assert len(errors) >= 5
    assert np.median(errors) < 0.1
