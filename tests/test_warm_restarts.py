"""Warm restarts (CosineAnnealingWarmRestarts): a healthy run's near-zero loss wanders after a restart without a climb
warning; a blow-up after a restart is still caught."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from curvecast import Curvecast
from tiny_models import CurveModule

STEPS, CYCLE = 600, 150


class RestartingCurve(CurveModule):
    """A known loss curve under SGD with CosineAnnealingWarmRestarts (a restart every 150 steps), stepped every step."""

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05)
        restarts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=CYCLE, eta_min=1e-4)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": restarts, "interval": "step"}}


def _curve(seed: int, after_restart: np.ndarray) -> np.ndarray:
    """A fall from 2.4 to a floor of 0.001 with the heavy batch noise of a loss near zero, times ``after_restart``."""
    t = np.arange(STEPS)
    noise = np.exp(0.5 * np.random.default_rng(seed).standard_normal(STEPS))
    return (2.4 * np.exp(-t / 30.0) + 0.001) * after_restart * noise


def _alarms(curve: np.ndarray, quiet_trainer_kwargs: dict) -> tuple[list, object]:
    bundle = Curvecast(early_stopping=True, forecast_budget=None, background=False, tensorboard=False)
    pl.Trainer(max_steps=STEPS, callbacks=[bundle], **quiet_trainer_kwargs).fit(RestartingCurve(curve=curve))
    alarms = [(a.kind, a.step) for r in bundle.reports for a in r.anomalies if a.severity != "info"]
    return alarms, bundle.stop


@pytest.mark.parametrize("seed", [0, 1])
def test_a_near_zero_loss_wandering_after_a_restart_is_no_climb(quiet_trainer_kwargs: dict, seed: int) -> None:
    # The loss wanders up 4x for 40 steps, 30 steps after the restart at 450. A ResNet and an MLP under warm restarts
    # were warned of such climbs (0.0007 -> 0.0034 after a fall from 2.4): the restart had reset the progress the run
    # made, so the wobble gave back "all" of it. It gives back 0.1%.
    t = np.arange(STEPS)
    alarms, stop = _alarms(_curve(seed, np.where((t >= 480) & (t < 520), 4.0, 1.0)), quiet_trainer_kwargs)
    assert alarms == []
    assert stop is None


def test_a_blow_up_after_a_restart_is_still_caught(quiet_trainer_kwargs: dict) -> None:
    # After the restart at 450 the loss climbs back to where it started (x1000 over 60 steps) and stays there.
    t = np.arange(STEPS)
    climb = np.where(t >= 470, np.minimum(1000.0, 10.0 ** (3.0 * (t - 470) / 60.0)), 1.0)
    alarms, _ = _alarms(_curve(0, climb), quiet_trainer_kwargs)
    assert any(kind == "divergence" and 470 < step < 540 for kind, step in alarms)
