"""A loss whose objective changes on purpose: a VAE trained on ``recon + beta * kl`` with ``beta`` warming up from 0 to
1 climbs while it learns well. Where the module logs ``beta`` (or ``kl_weight``, ``kl_coef``) and it moved over the
climb, the climb is a note naming it, live and in ``curvecast analyze``, with no advice to lower the LR; without a
logged weight, or with one that held still over the climb, it is warned as before. A real blow-up and an infinite loss
with a weight logged still stop the run."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from curvecast.offline.analysis import analyze
from run_helpers import AnomalyRecorder, tiny_trainer
from tiny_models import CurveModule, TinyVAE

STEPS = 110  # the warm-up climb is warned of at step 76 (its lowest level about step 45, beta then 0.22)


def _fit(module: pl.LightningModule, tmp_path, steps: int = STEPS, logger=False) -> tuple[Curvecast, pl.Trainer, list]:
    recorder = AnomalyRecorder()
    bundle = Curvecast(
        early_stopping=True, forecast_budget=None, background=False, tensorboard=False, actuators=[recorder]
    )
    trainer = tiny_trainer(tmp_path, [bundle], steps, logger=logger, log_every_n_steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module)
    assert not [str(w.message) for w in caught if "failed and was skipped" in str(w.message)]
    return bundle, trainer, [a for a in recorder.anomalies if a.series == "loss"]


def _climbs(found: list) -> list:
    return [a for a in found if a.kind == "divergence"]


@pytest.mark.parametrize("name", ["beta", "kl_weight", "train/kl_coef"])
def test_a_kl_warmup_climb_with_its_weight_logged_is_a_note(tmp_path, name):
    bundle, trainer, found = _fit(TinyVAE(beta_names=[name]), tmp_path)
    assert trainer.global_step == STEPS
    assert bundle.stop is None
    loss = bundle.history.series("loss").values
    assert np.median(loss[70:80]) > 1.1 * np.median(loss[40:50])  # it climbs
    climbs = _climbs(found)
    assert climbs  # the climb is seen ...
    assert {a.severity for a in found} == {"info"}  # ... and is a note, as is the plateau it makes
    assert not [a.kind for a in bundle.advice.advice if "plateau" in a.kind]  # nor told to decay the LR there
    assert name in bundle.history  # sampled at the loss capture's flushes
    for anomaly in climbs:
        assert f"The run logs `{name}`, a weight of its objective, which rose from" in anomaly.message
        assert "LR" not in anomaly.message


@pytest.mark.parametrize("components", [False, True])
def test_without_a_logged_weight_the_climb_is_warned(tmp_path, components):
    # The components alone (`recon_loss`, `kl`) prove nothing: the reconstruction rises too as the KL term is weighted
    # in, and a term left unlogged may be the one climbing.
    _, _, found = _fit(TinyVAE(beta_names=(), components=components), tmp_path)
    climbs = _climbs(found)
    assert climbs
    assert all(a.severity == "warning" and "lower LR" in a.message for a in climbs)


class _LateClimb(CurveModule):
    """A loss that falls, then climbs 0.6% a step from step 150 (a real slow climb), and logs ``beta``: warmed up from
    0 to 1 over the first 50 steps, then held at 1."""

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        t = np.arange(260)
        fall = 1.0 + 2.0 / np.sqrt(t + 1.0)
        climb = np.where(t > 150, 1.0 + 0.006 * (t - 150), 1.0)
        super().__init__(curve=(fall * climb * np.exp(0.02 * rng.standard_normal(t.size))).tolist())

    def training_step(self, batch, batch_idx):
        self.log("beta", min(1.0, self.global_step / 50))
        return super().training_step(batch, batch_idx)


def test_a_weight_that_held_still_over_the_climb_explains_nothing(tmp_path):
    _, _, found = _fit(_LateClimb(), tmp_path, steps=260)
    climbs = [a for a in _climbs(found) if a.step > 150]
    assert climbs
    assert all(a.severity != "info" and "beta" not in a.message for a in climbs)


@pytest.mark.parametrize(("lr_to", "kind"), [(0.5, "divergence"), (3.0, "nonfinite")])
def test_a_blowup_with_a_weight_logged_still_stops_the_run(tmp_path, lr_to, kind):
    bundle, trainer, found = _fit(TinyVAE(lr_to=lr_to, hot_at=100), tmp_path, steps=160)
    assert bundle.stop is not None
    assert trainer.global_step < 125
    assert any(a.kind == kind and a.severity == "critical" for a in found)
    # Its precursors are no weight's doing either: the loss rose far more than beta's move could make it.
    late = [a for a in found if a.step >= 100 and a.kind != "plateau"]
    assert [(a.kind, a.step, a.message) for a in late if a.severity == "info"] == []


def _drop_column(source, target, column: str) -> None:
    with open(source, newline="") as read:
        rows = list(csv.DictReader(read))
    fields = [name for name in rows[0] if name != column]
    with open(target, "w", newline="") as write:
        writer = csv.DictWriter(write, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_analyze_notes_the_climb_of_a_csv_log_with_its_weight(tmp_path):
    logger = pl.loggers.CSVLogger(str(tmp_path), name="vae", version=0)
    _fit(TinyVAE(beta_names=["kl_weight"]), tmp_path, logger=logger)
    log = tmp_path / "vae" / "version_0" / "metrics.csv"
    with_weight = analyze(log, tag="train_loss")
    climbs = _climbs(with_weight.anomalies)
    assert climbs
    assert all(a.severity == "info" and "`kl_weight`, a weight of its objective" in a.message for a in climbs)
    assert with_weight.coefficients == ["kl_weight"]
    _drop_column(log, tmp_path / "no_weight.csv", "kl_weight")
    without = _climbs(analyze(tmp_path / "no_weight.csv", tag="train_loss").anomalies)
    assert [a.step for a in without] == [a.step for a in climbs]
    assert all(a.severity == "warning" and "lower LR" in a.message for a in without)
