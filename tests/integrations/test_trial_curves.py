"""TrialCurve: a finished trial's curve kept small in a user attribute, and read back as a forecasting reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curvecast.integrations.trial_curves import MAX_CURVE_POINTS, TrialCurve, chance_to_beat, subsample


def test_a_long_curve_is_subsampled_keeping_its_ends() -> None:
    steps = np.arange(1, 5001) * 2
    curve = TrialCurve.record(steps, 1.0 / steps, horizon=10_000, lr_of_step=lambda s: 0.1 * (1 - s / 10_000))
    assert len(curve.steps) <= MAX_CURVE_POINTS
    assert (curve.steps[0], curve.steps[-1]) == (2, 10_000)
    assert np.all(np.diff(curve.steps) > 0)
    assert len(curve.lr_steps) <= MAX_CURVE_POINTS
    assert (curve.lr_steps[0], curve.lr_steps[-1]) == (0, 10_000)
    assert curve.lrs[-1] == pytest.approx(0.0)
    assert curve.lrs[0] == pytest.approx(0.1)
    assert len(json.dumps(curve.to_attr("val_loss"))) < 16_000  # small enough for any study storage


def test_short_curves_are_kept_whole() -> None:
    assert subsample(5).tolist() == [0, 1, 2, 3, 4]


def test_round_trip_through_a_user_attribute() -> None:
    curve = TrialCurve.record([10, 20, 30], [3.0, math.nan, 2.0], horizon=30, lr_of_step=lambda s: 0.5)
    attr = json.loads(json.dumps(curve.to_attr("val_loss")))  # what a storage hands back
    assert attr["values"] == [3.0, None, 2.0]
    back = TrialCurve.from_attr(attr, "val_loss")
    assert back.steps.tolist() == [10, 20, 30]
    assert back.horizon == 30
    assert np.isnan(back.values[1])
    assert back.values[2] == 2.0
    assert back.lrs.tolist() == [0.5] * len(back.lr_steps)


@pytest.mark.parametrize(
    "attr",
    [
        None,
        "not a dict",
        {"monitor": "other", "steps": [1, 2], "values": [1.0, 2.0], "horizon": 2},
        {"monitor": "val_loss", "steps": [2, 1], "values": [1.0, 2.0], "horizon": 2},
        {"monitor": "val_loss", "steps": [1, 2], "values": [1.0], "horizon": 2},
        {"monitor": "val_loss", "steps": [1, 2], "values": ["x", 1.0], "horizon": 2},
        {"monitor": "val_loss", "values": [1.0, 2.0], "horizon": 2},
    ],
)
def test_a_missing_or_malformed_attribute_is_no_curve(attr) -> None:
    assert TrialCurve.from_attr(attr, "val_loss") is None


def test_malformed_lrs_are_dropped_and_the_curve_kept() -> None:
    attr = {"monitor": "m", "steps": [1, 2], "values": [1.0, 2.0], "horizon": 2, "lr_steps": [0, 2], "lrs": [0.1]}
    curve = TrialCurve.from_attr(attr, "m")
    assert curve is not None
    assert curve.lrs is None


def test_the_reference_carries_one_lr_per_step() -> None:
    pytest.importorskip("curvecast.forecasting.references")
    steps = np.arange(10, 110, 10)
    curve = TrialCurve.record(steps, 2.0 + 1.0 / steps, horizon=100, lr_of_step=lambda s: 1.0 - s / 100)
    reference = curve.reference()
    assert reference.lrs.shape == (101,)
    assert reference.lrs[50] == pytest.approx(0.5)
    too_short = TrialCurve.record([1, 2, 3], [1.0, 1.0, 1.0], horizon=3)
    assert too_short.reference() is None


def _finished(halving: float, horizon: int = 100) -> TrialCurve:
    """A finished trial whose loss falls from 4 to 4 / halving... by its end (geometrically)."""
    steps = np.arange(10, horizon + 1, 10)
    return TrialCurve.record(steps, 4.0 * halving ** (-steps / horizon), horizon=horizon)


def test_the_record_of_finished_trials_gives_the_chance_to_beat_the_best() -> None:
    curves = [_finished(h) for h in (3.8, 4.0, 4.2, 3.9, 4.1, 4.0)]  # each halves its loss twice over the run
    best = 1.0
    # At mid-run the finished trials stood near 2.0 and went on to halve it: 3.0 ends near 1.5, 1.9 near 0.95.
    hopeless = chance_to_beat(50, 3.0, 100, curves, best)
    hopeful = chance_to_beat(50, 1.9, 100, curves, best)
    assert hopeless < 0.01
    assert hopeful > 0.5


def test_few_finished_trials_give_a_heavy_tailed_chance_or_none() -> None:
    assert chance_to_beat(50, 3.0, 100, [_finished(4.0)], best=1.0) is None  # one trial says nothing of the spread
    two = chance_to_beat(50, 3.0, 100, [_finished(4.0), _finished(4.1)], best=1.0)
    six = chance_to_beat(50, 3.0, 100, [_finished(h) for h in (4.0, 4.1, 3.9, 4.0, 4.1, 3.9)], best=1.0)
    assert two > six  # the same record from two trials leaves more room for a trial that improves more


def test_a_trial_that_crossed_the_others_keeps_a_trailing_trial_alive() -> None:
    steady = [_finished(h) for h in (2.0, 2.1, 1.9)]
    crossing = [*steady, _finished(12.0)]  # a trial that trailed at mid-run and still ended far lower
    # The steady trials improved by 1.4x from mid-run: 3.5 would end near 2.5, above the best 2.0.
    alone = chance_to_beat(50, 3.5, 100, steady, best=2.0)
    assert alone < 0.05
    assert chance_to_beat(50, 3.5, 100, crossing, best=2.0) > 0.1


def test_a_rising_metric_and_unfinished_curves() -> None:
    steps = np.arange(10, 101, 10)
    rising = [TrialCurve.record(steps, 0.5 + gain * steps / 100, horizon=100) for gain in (0.3, 0.32, 0.28)]
    assert chance_to_beat(50, 0.6, 100, rising, best=0.95, mode="max") < 0.05  # ends near 0.75
    assert chance_to_beat(50, 0.8, 100, rising, best=0.95, mode="max") > 0.5  # ends near 0.95 or above
    cut_short = [TrialCurve.record(steps[:5], 0.5 + 0.3 * steps[:5] / 100, horizon=100) for _ in range(3)]
    assert chance_to_beat(20, 0.6, 100, cut_short, best=0.95, mode="max") is None
