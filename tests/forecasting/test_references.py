"""Reference runs: finished curves of the same recipe inform the forecast of a run in progress."""

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from curvecast.forecasting.references import Reference
from real_curve import load_train_curve


def _step_decay_run(seed: int, scale: float, horizon: int = 4000):
    # A constant LR cut 10x at 60 % of the run (the schedule is not given): the loss drops there, which no
    # schedule-free law fitted to a 40 % prefix can know.
    rng = np.random.default_rng(seed)
    t = np.arange(1, horizon + 1, dtype=float)
    clean = scale * (1.5 + 4.0 * t**-0.4) * np.where(t > 0.6 * horizon, 0.8, 1.0)
    return t, clean, clean * np.exp(rng.normal(0.0, 0.01, t.size))


def test_references_of_the_recipe_foresee_a_drop_the_prefix_cannot_show():
    refs = [Reference(t, y) for t, _, y in (_step_decay_run(s, 1.0 + 0.03 * s) for s in range(1, 5))]
    t, clean, y = _step_decay_run(0, 0.97)
    seen = t <= 0.4 * t[-1]
    alone = Forecaster().fit(t[seen], y[seen], horizon=int(t[-1]))
    informed = Forecaster().fit(t[seen], y[seen], horizon=int(t[-1]), references=refs)
    assert informed.ok
    assert "reference" in informed.model
    assert abs(alone.final / clean[-1] - 1) > 0.15
    assert abs(informed.final / clean[-1] - 1) < 0.5 * abs(alone.final / clean[-1] - 1)
    assert informed.interval(0.8)[0] < clean[-1]


def test_sibling_runs_of_a_real_recipe_improve_the_forecast(curves_dir):
    paths = sorted(curves_dir.glob("mng__2024-12-04_ValueEmbed__*.csv"))[:6]
    if len(paths) < 4:
        pytest.skip("the ValueEmbed record runs are not in the curves folder")
    runs = [load_train_curve(p) for p in paths]
    gains = []
    for i, (t, y, horizon, lrs) in enumerate(runs[:3]):
        refs = [Reference(s, v, lr) for j, (s, v, _, lr) in enumerate(runs) if j != i]
        seen = t <= 0.25 * horizon
        truth = float(np.polyval(np.polyfit(np.arange(76.0), y[-76:], 1), 75.0))  # a line through the last 5 %
        alone = Forecaster().fit(t[seen], y[seen], horizon=horizon, lrs=lrs)
        informed = Forecaster().fit(t[seen], y[seen], horizon=horizon, lrs=lrs, references=refs)
        gains.append(abs(alone.final / truth - 1) - abs(informed.final / truth - 1))
    assert np.mean(gains) > 0
    assert min(gains) > -0.002


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": [1, 2, 3], "values": [1.0, 2.0]}, "must be 1-D of one length"),
        ({"steps": [1, 3, 2, 4, 5], "values": [5.0, 4, 3, 2, 1]}, "must be finite, non-negative and increasing"),
        ({"steps": [1, 2, 3], "values": [3.0, 2, 1]}, "at least 5 finite values, but got 3"),
        ({"steps": [1, 2, 3, 4, 5], "values": [5.0, 4, 3, 2, 1], "lrs": [1.0] * 3}, r"one finite LR >= 0 per step"),
    ],
)
def test_invalid_reference_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reference(**kwargs)
