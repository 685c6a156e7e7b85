"""A classifier's loss on its fast way to near zero is no instability: a small transformer (AdamW, linear warmup and
decay) fell from 0.65 to 0.005 in 140 steps, its batches then 0.002-0.05 (one misclassified example lifts a batch
tenfold), and got an ``instability_risk`` warning ("loss creeping up; loss noise 3.2x its usual level") in 2 of 3
seeds. While the loss still falls fast, a creep must give back half the progress made to count as a precursor, as a
climb must to be warned of; a loss that climbs back is still warned of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curvecast import Curvecast
from tests.run_helpers import AnomalyRecorder, tiny_trainer
from tests.tiny_models import CurveModule

DATA = Path(__file__).parent / "data"


def _warnings(tmp_path: Path, curve: np.ndarray) -> list:
    """The instability and divergence warnings of a run whose training loss is ``curve``."""
    recorder = AnomalyRecorder()
    bundle = Curvecast(actuators=[recorder], background=False, tensorboard=False)
    tiny_trainer(tmp_path, [bundle], len(curve), logger=False).fit(CurveModule(curve=curve.tolist()))
    kinds = ("instability_risk", "divergence")
    return [a for a in recorder.anomalies if a.kind in kinds and a.severity != "info"]


@pytest.mark.parametrize("seed", [0, 2])
def test_a_loss_falling_to_near_zero_is_no_instability(tmp_path: Path, seed: int) -> None:
    losses = np.loadtxt(DATA / f"transformer_batch_loss_seed{seed}.txt")
    assert losses[:5].min() > 0.6
    assert np.median(losses[150:200]) < 0.03  # fell 20-fold and more
    assert losses[130:160].max() > 5 * np.median(losses[130:160])  # batches far above their median
    assert _warnings(tmp_path, losses) == []


def test_a_loss_climbing_back_from_near_zero_is_still_warned_of(tmp_path: Path) -> None:
    # The same run until step 150, then its level climbs 6% a step, back towards where it started.
    losses = np.loadtxt(DATA / "transformer_batch_loss_seed0.txt")
    climb = np.concatenate([losses[:150], np.median(losses[140:150]) * 1.06 ** np.arange(1, 91)])
    warned = _warnings(tmp_path, climb)
    assert warned
    assert 150 < warned[0].step < 180
