"""The forecast of the next logged value carries that value's noise: a classifier's per-batch loss scatters more as it
falls (fewer examples left wrong in each batch), and read over the whole run its scatter was a quarter of its recent
one. A fine-tuned MLP (BackboneFinetuning, StepLR; batch 64) was forecast at its last step 0.62 .. 0.68 for the next
batch, below each of its last five batches (0.68-0.98)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curvecast import Curvecast
from tests.run_helpers import tiny_trainer
from tests.tiny_models import CurveModule

# The run's per-batch training loss, steps 0-767 of 768 (12 epochs of 64 batches).
LOSSES = np.loadtxt(Path(__file__).parent / "data" / "finetune_batch_loss.txt")


def test_the_last_forecast_holds_the_batches_it_forecasts(tmp_path: Path) -> None:
    recent = LOSSES[-64:]  # the last epoch's batches
    assert np.percentile(recent, 90) / np.percentile(recent, 10) > 1.3  # they scatter by tens of percent
    bundle = Curvecast(background=False, tensorboard=False, forecast_every=64, forecast_budget=None)
    tiny_trainer(tmp_path, [bundle], len(LOSSES) + 1, logger=False).fit(CurveModule(curve=LOSSES.tolist()))
    report = bundle.last_report
    assert report.step >= len(LOSSES) - 1
    lo, hi = report.forecast.interval(0.8)
    held = np.mean((recent >= lo) & (recent <= hi))
    assert held >= 0.6  # an 80% interval for one more batch holds most of the batches like it
    assert lo < np.median(recent) < hi
