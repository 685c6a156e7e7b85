"""The arithmetic of a climb put down to a weight of the objective (``objective_change``), on plain arrays."""

from __future__ import annotations

import numpy as np
import pytest

from curvecast.forecasting.anomalies import Anomaly
from curvecast.forecasting.anomalies.objective_change import as_objective_change, climb_start, moved_coefficient

STEPS = np.arange(200)
# A loss that falls to 1.0 by step 100 and climbs 0.5% a step after it, a little noise.
LOSS = np.where(STEPS < 100, 3.0 - 0.02 * STEPS, 1.0 + 0.005 * (STEPS - 100)) * np.exp(
    0.01 * np.random.default_rng(0).standard_normal(STEPS.size)
)
CLIMB = Anomaly("divergence", 140, "warning", "loss has been climbing since about step 100. Lower the LR.", value=1.2)


def _weight(values) -> dict:
    steps = np.arange(0, 200, 8)  # sampled at the loss capture's flushes
    return {"beta": (steps, np.asarray([values(s) for s in steps], dtype=float))}


def test_the_climb_starts_where_the_level_was_lowest() -> None:
    start, low = climb_start(STEPS, LOSS, 140)
    assert 95 <= start <= 110
    assert low == pytest.approx(1.0, rel=0.03)
    assert climb_start(STEPS[:3], LOSS[:3], 2) == (2, pytest.approx(np.nan, nan_ok=True))


def test_a_weight_rising_over_the_climb_makes_it_a_note() -> None:
    noted = as_objective_change(CLIMB, (STEPS, LOSS), _weight(lambda s: min(1.0, s / 200)))
    assert noted.severity == "info"
    assert "Lower the LR" not in noted.message
    assert "The run logs `beta`, a weight of its objective, which rose from 0.48 to 0.72" in noted.message


@pytest.mark.parametrize(
    "weight",
    [
        lambda s: 1.0,  # constant
        lambda s: min(1.0, s / 50),  # warmed up long before the climb
        lambda s: 0.95 + 0.0001 * s,  # moved by under a tenth
        lambda s: 1.0 + max(0, s - 96) * 0.15 / 48,  # 1.0 -> 1.15: the loss's 1.0 -> 1.19 is more than it can make
    ],
)
def test_a_weight_that_cannot_explain_the_climb_leaves_the_warning(weight) -> None:
    assert as_objective_change(CLIMB, (STEPS, LOSS), _weight(weight)) is CLIMB


def test_what_no_weight_explains_stays() -> None:
    weight = _weight(lambda s: s / 200)
    critical = Anomaly("divergence", 140, "critical", "loss diverged. Stop.")
    spike = Anomaly("spike", 140, "warning", "loss spiked. Lower the LR.")
    nan = Anomaly("nonfinite", 140, "critical", "loss became NaN.")
    assert [as_objective_change(a, (STEPS, LOSS), weight) for a in (critical, spike, nan)] == [critical, spike, nan]
    # A loss at or below zero has no ratio to weigh the weight's move against.
    assert moved_coefficient(CLIMB, (STEPS, LOSS - 2.0), weight) is None


def test_a_plateau_over_which_the_weight_rose_loses_its_advice() -> None:
    flat = np.full(STEPS.size, 2.0)
    plateau = Anomaly("plateau", 150, "info", "loss has not improved by 1% since step 100. Try a higher LR.")
    noted = as_objective_change(plateau, (STEPS, flat), _weight(lambda s: s / 200))
    assert noted.severity == "info"
    assert "higher LR" not in noted.message
    assert "over this plateau" in noted.message


def test_an_instability_warning_is_weighed_by_its_own_point() -> None:
    """Its precursors are points: a co-spike of 25x the climb's start at the blow-up's first step is no weight's doing,
    though the median of the last 3 points (1.2x) is; the same warning at the level's own value is a note."""
    weight = _weight(lambda s: min(1.0, s / 200))
    said = "Instability precursors at step 140: loss and gradient norm spiked together. Save a checkpoint."
    spiked = Anomaly("instability_risk", 140, "warning", said, value=25.0)
    at_level = Anomaly("instability_risk", 140, "warning", said, value=1.2)
    assert as_objective_change(spiked, (STEPS, LOSS), weight) is spiked
    assert as_objective_change(at_level, (STEPS, LOSS), weight).severity == "info"
