"""A few validations at one level are a pause of a curve still learning, not its end: a classifier's validation
accuracy rose 0.45 -> 0.55 over 10 epochs and held 0.55 for three; its held-back tail made the flat hypothesis the
whole forecast (0.5547, 80%: 0.545 .. 0.567 for 450 more steps, with a chance of 0 for any target above 0.57) and
the run ended at 0.59. On a curve whose later half still moves clear of its noise the flat member's share is held to
``FLAT_MOVING_SHARE``; a curve that has stalled is still forecast flat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curvecast.forecasting import Forecaster
from curvecast.forecasting.calibration import FLAT_MOVING_SHARE

CURVE = np.loadtxt(Path(__file__).parents[1] / "data" / "classifier_val_acc.txt")
HORIZON = 960
CONSTANT_LR = np.full(HORIZON + 1, 0.003)


def _fit(points: int):
    steps, values = CURVE[:points, 0], CURVE[:points, 1]
    return Forecaster().fit(steps, values, horizon=HORIZON, lrs=CONSTANT_LR, mode="max", bounds=(0.0, 1.0))


def test_a_pause_of_a_rising_score_is_not_its_end() -> None:
    final = CURVE[-1, 1]
    for points in (16, 17):  # the pause: 0.5547, 0.5498, 0.5547 (and a new best, 0.5605)
        forecast = _fit(points)
        lo, hi = forecast.interval(0.8)
        assert lo <= final <= hi
        flat_share = sum(w for w, m in forecast.diagnostics.members if m.name == "flat")
        assert flat_share <= FLAT_MOVING_SHARE + 1e-9


def test_a_score_that_has_stalled_is_still_forecast_at_its_level() -> None:
    # The same rise, then 12 validations at its level: learning has stopped.
    steps = np.concatenate([CURVE[:14, 0], CURVE[13, 0] + 32.0 * np.arange(1, 13)])
    values = np.concatenate([CURVE[:14, 1], CURVE[13, 1] + 0.001 * np.sin(np.arange(12))])
    forecast = Forecaster().fit(steps, values, horizon=HORIZON, lrs=CONSTANT_LR, mode="max", bounds=(0.0, 1.0))
    assert abs(forecast.final - CURVE[13, 1]) < 0.01


def test_three_held_back_points_forecast_by_luck_leave_the_interval_its_spread() -> None:
    """Another seed of the classifier, 10 validations in (step 320 of 960): two members forecast its three held-back
    points within 0.1% and had the whole say, and the interval shrank to theirs (0.570 .. 0.591, a chance of 0 of
    0.606 or more); the run ended at 0.611. The spread now reads every member alike when the tail is that short."""
    curve = np.loadtxt(Path(__file__).parents[1] / "data" / "classifier_val_acc_seed2.txt")
    steps = 32.0 * np.arange(1, len(curve) + 1)
    forecast = Forecaster().fit(steps[:10], curve[:10], horizon=HORIZON, lrs=CONSTANT_LR, mode="max", bounds=(0.0, 1.0))
    assert forecast.ok, forecast.reason
    lo, hi = forecast.interval(0.8)
    assert lo <= curve[-1] <= hi
    assert forecast.prob_beyond(0.606) > 0.1
    # The point forecast is the held-back tail's choice still: two members.
    assert len(forecast.diagnostics.members) == 2
