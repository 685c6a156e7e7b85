"""One lucky batch is never the best a loss is said to have turned up from: a healthy classifier's batch loss, whose
single low batch was followed by two ordinary ones, raised an ``instability_risk`` warning ("loss turned up to 0.76
from 0.43"). A loss that really turns up, against a low that several of its points share, still does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curvecast import Curvecast
from tests.run_helpers import AnomalyRecorder, tiny_trainer
from tests.tiny_models import CurveModule

# A real run's per-batch training loss (steps 0-199): a 10-class MLP, Adam 3e-3, batch 32; step 168 drew a batch of
# 0.43 among batches of 0.57-0.77, steps 170-171 two of 0.70 and 0.76.
LOSSES = np.loadtxt(Path(__file__).parent / "data" / "classifier_batch_loss.txt")


def _risks(tmp_path: Path, curve: np.ndarray) -> list:
    recorder = AnomalyRecorder()
    bundle = Curvecast(actuators=[recorder], background=False, tensorboard=False)
    tiny_trainer(tmp_path, [bundle], len(curve), logger=False).fit(CurveModule(curve=curve.tolist()))
    return [a for a in recorder.anomalies if a.kind == "instability_risk"]


def test_a_lucky_batch_is_no_low_to_turn_up_from(tmp_path: Path) -> None:
    assert LOSSES[168] < 0.45
    assert LOSSES[171] > 0.75
    assert _risks(tmp_path, LOSSES) == []


def test_a_loss_that_turns_up_from_its_low_is_still_warned_of(tmp_path: Path) -> None:
    # The same run until step 150, then its level climbs 4% a step: the points before share the low it climbs from.
    climb = LOSSES[:150].tolist() + [LOSSES[149] * 1.04**k for k in range(1, 51)]
    risks = _risks(tmp_path, np.asarray(climb))
    assert risks
    assert 150 < risks[0].step < 170
    assert "turned up" in risks[0].message or "creeping" in risks[0].message
