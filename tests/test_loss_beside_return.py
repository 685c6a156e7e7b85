"""A run that logs an RL agent's return beside the training loss it is watched by (the default monitor): an actor-
critic's or a DQN's loss grows with its returns, so its climbs are notes saying so, not warnings of an unstable run.
A run that logs no return is warned as before, and a non-finite loss still stops either."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from tiny_models import CurveModule

STEPS = 300


def _critic_loss(seed: int = 0) -> list[float]:
    """A value loss that grows as the returns it regresses on grow (0.1 -> 1.0 over the run), 5% noise."""
    rng = np.random.default_rng(seed)
    return (np.linspace(0.1, 1.0, STEPS) * np.exp(0.05 * rng.standard_normal(STEPS))).tolist()


class Agent(CurveModule):
    """Its training loss follows ``curve``; it logs ``return_name`` (the episode return, climbing) when given."""

    def __init__(self, curve: list[float], return_name: str | None, nan_from: int | None = None) -> None:
        super().__init__(curve=curve, nan_from=nan_from)
        self.return_name = return_name

    def training_step(self, batch, batch_idx):
        if self.return_name is not None:
            self.log(self.return_name, 20.0 + 0.5 * self.global_step)
        return super().training_step(batch, batch_idx)


def _fit(module: Agent, tmp_path) -> tuple[Curvecast, pl.Trainer]:
    bundle = Curvecast(early_stopping=True, forecast_budget=None, background=False, tensorboard=False)
    trainer = pl.Trainer(
        max_steps=STEPS, callbacks=[bundle], default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module)
    failed = [str(w.message) for w in caught if "failed and was skipped" in str(w.message)]
    assert not failed  # curvecast's own failures are warnings: none may hide here
    return bundle, trainer


def _loss_anomalies(bundle: Curvecast) -> list:
    return [a for r in bundle.reports for a in r.anomalies if a.series == "loss"]


@pytest.mark.parametrize("name", ["episode_return", "rollout/ep_rew_mean"])
def test_a_loss_climbing_beside_a_logged_return_is_a_note(tmp_path, name):
    bundle, trainer = _fit(Agent(_critic_loss(), name), tmp_path)
    assert trainer.global_step == STEPS
    assert bundle.stop is None
    found = _loss_anomalies(bundle)
    assert found  # the climb is seen ...
    assert {a.severity for a in found} == {"info"}  # ... and said to be a note
    noted = [a.message for a in found if a.kind == "divergence"]
    assert noted
    assert all(f"The run logs `{name}`, a return" in m and "lower LR" not in m for m in noted)


@pytest.mark.parametrize("name", [None, "rewards/margins"])
def test_without_a_return_the_same_climb_is_warned(tmp_path, name):
    # A preference-tuning run's implicit rewards (DPO's `rewards/margins`) are no agent's return: its loss is minimised.
    bundle, _ = _fit(Agent(_critic_loss(), name), tmp_path)
    assert {a.severity for a in _loss_anomalies(bundle)} & {"warning", "critical"}


def test_a_nan_loss_beside_a_return_still_stops_the_run(tmp_path):
    bundle, trainer = _fit(Agent(_critic_loss(), "episode_return", nan_from=200), tmp_path)
    assert bundle.stop is not None
    assert trainer.global_step <= 201
    assert any(a.kind == "nonfinite" and a.severity == "critical" for a in _loss_anomalies(bundle))
    assert math.isnan(Agent(_critic_loss(), None, nan_from=200).value(250))


def test_a_plateau_of_a_loss_beside_a_return_gives_no_lr_advice(tmp_path):
    flat = (0.5 * np.exp(0.02 * np.random.default_rng(1).standard_normal(STEPS))).tolist()  # a surrogate at its level
    bundle, _ = _fit(Agent(flat, "episode_return"), tmp_path)
    plateaus = [a for a in _loss_anomalies(bundle) if a.kind == "plateau"]
    assert plateaus
    assert not any("LR" in a.message for a in plateaus)
