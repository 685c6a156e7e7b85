"""`curvecast analyze` of a training loss says what a live run watched by it says of the validation loss logged beside
it: a climb while the training loss holds is overfitting, in the same words, one warning and later notes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_lightning.loggers import CSVLogger

from curvecast import Curvecast
from curvecast.cli import main
from curvecast.forecasting import detect_anomalies
from curvecast.forecasting.anomalies.overfit import detect_overfitting
from curvecast.logreaders import Curve
from curvecast.offline.analysis import analyze
from curvecast.offline.overfitting import is_training_loss
from tests.run_helpers import AnomalyRecorder, tiny_trainer
from tests.test_false_alarms import WILD, _columns, _is_training_loss, wild_only
from tests.test_overfit_watch import NOT_HEALTHY, Memorises, _replay

OVERFITS = (
    "The training loss is not climbing with it: the model overfits. "
    'Keep the best checkpoint (`ModelCheckpoint(monitor="val_loss")`)'
)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["analyze", *args, "--no-plot"]) == 0
    return capsys.readouterr().out


@wild_only
def test_a_wild_log_that_overfits_is_told_so_as_live(capsys: pytest.CaptureFixture[str]) -> None:
    """Wild 112: val_loss climbs 0.059 -> 0.099 while train_loss falls 0.044 -> 0.003; the analysed training loss
    has no anomaly of its own, and before, the report said nothing more."""
    text = _cli(capsys, str(WILD / "112.csv"))
    report = json.loads(_cli(capsys, str(WILD / "112.csv"), "--json"))
    assert report["series"]["name"] == "train_loss"
    overfitting = report["overfitting"]
    assert overfitting["series"] == "val_loss"
    events = overfitting["anomalies"]
    assert [e["severity"] for e in events] == ["warning", "info", "info"]  # one warning, later notes, never critical
    assert all(e["series"] == "val_loss" and e["kind"] == "divergence" for e in events)
    assert OVERFITS in events[0]["message"]
    # The same words, steps and severities as a live run watched by its training loss (a StabilityWatch replay).
    _, live = _replay(WILD / "112.csv")
    assert [(e["step"], e["severity"], e["message"]) for e in events] == [(a.step, a.severity, a.message) for a in live]
    assert "  overfitting: `val_loss`, the validation loss beside it, watched as live: 3" in text
    (warning,) = [line for line in text.splitlines() if line.startswith("    [warning]")]
    # Whole, unlike the other anomalies' first sentence: what to keep, and how to stop such a run, is its point.
    assert warning == f"    [warning] divergence at step 8441: {events[0]['message']}"
    assert "got worse at each of its last 5 validations" in warning
    assert "  anomalies: none" in text  # the training loss's own: the validation loss's are not among them


@wild_only
def test_healthy_wild_logs_analysed_say_nothing_of_their_validation_loss() -> None:
    logs = [p for p in sorted(WILD.glob("*.csv")) if p.stem not in NOT_HEALTHY | {"112", "167"}]  # 167: no loss
    analyses = [(p.stem, analyze(p)) for p in logs]
    with_both = [(stem, a) for stem, a in analyses if a.validation is not None]
    assert len(with_both) >= 35  # a training loss analysed, a validation loss beside it
    assert [(stem, a.validation, e.step, e.message) for stem, a in with_both for e in a.overfitting] == []


@wild_only
def test_the_offline_replay_is_the_live_watch() -> None:
    """Given the series the live replay takes, every wild log's overfitting is the same event for event: one
    implementation, fed the same points in the same order."""
    compared = 0
    for path in sorted(WILD.glob("*.csv")):
        columns = _columns(path)
        train = max((p for n, _, p in columns if _is_training_loss(n)), key=len, default=[])
        name, live = _replay(path)
        if not train or name is None:
            continue
        val = next(p for n, _, p in columns if n == name)
        arrays = [(np.array([s for s, _ in p]), np.array([v for _, v in p])) for p in (train, val)]
        offline = detect_overfitting(arrays[0], arrays[1], name)
        assert [(a.step, a.severity, a.message) for a in offline] == [(a.step, a.severity, a.message) for a in live]
        compared += bool(live)
    assert compared >= 3  # 092, 112 and 217 warn


@wild_only
def test_the_validation_loss_analysed_itself_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    path = WILD / "112.csv"
    analysis = analyze(path, tag="val_loss")
    assert (analysis.validation, analysis.overfitting) == (None, [])
    curve = analysis.curve
    alone = detect_anomalies(curve.steps, curve.values, series="val_loss", mode="min")
    assert [(a.step, a.message) for a in analysis.anomalies] == [(a.step, a.message) for a in alone]
    assert json.loads(_cli(capsys, str(path), "--tag", "val_loss", "--json"))["overfitting"] is None
    assert "overfitting" not in _cli(capsys, str(path), "--tag", "val_loss")


@pytest.mark.parametrize(
    ("name", "mode", "training"),
    [("train_loss", "min", True), ("loss", "min", True), ("curvecast/loss", "min", True), ("val_loss", "min", False),
     ("curvecast/val_loss", "min", False), ("test_loss", "min", False), ("valid/loss", "min", False),
     ("grad_norm", "min", False), ("train_acc", "max", False), ("train_loss", "max", False)],
)  # fmt: skip
def test_which_series_analysed_is_a_training_loss(name: str, mode: str, training: bool) -> None:
    curve = Curve(name, np.arange(3), np.ones(3))
    assert is_training_loss(curve, mode) is training


class LogsItsLoss(Memorises):
    """``Memorises`` logging its training loss at every step, as a CSVLogger writes it."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_loss", loss)
        return loss


def test_a_lightning_run_that_overfits_is_told_so_from_its_csv_log(tmp_path: Path) -> None:
    """A wide MLP on 96 examples (val_loss 1.57 at epoch 7, past 2.3 by 50) logged by a CSVLogger: its log analysed
    says what the run, watched live by the default ``Curvecast()``, said."""
    torch.manual_seed(0)
    recorder = AnomalyRecorder()
    bundle = Curvecast(actuators=[recorder], tensorboard=False)
    logger = CSVLogger(str(tmp_path), name="memorises", version=0)
    trainer = tiny_trainer(tmp_path, [bundle], -1, logger=logger, max_epochs=50, log_every_n_steps=1)
    trainer.fit(LogsItsLoss())
    live = [a for a in recorder.anomalies if a.series == "val_loss" and a.severity != "info"]
    analysis = analyze(tmp_path / "memorises" / "version_0" / "metrics.csv")
    assert (analysis.curve.name, analysis.validation) == ("train_loss", "val_loss")
    warned = [a for a in analysis.overfitting if a.severity != "info"]
    assert [a.severity for a in warned] == [a.severity for a in live] == ["warning"]
    assert OVERFITS in warned[0].message
    # The same point: the CSVLogger writes an epoch's val_loss at the step before the one curvecast records it at.
    assert live[0].step - 1 <= warned[0].step <= live[0].step
    assert warned[0].value == pytest.approx(live[0].value)


@wild_only
def test_analyze_with_its_overfitting_imports_no_torch() -> None:
    """The watch is the brain's (numpy only): ``curvecast analyze`` starts without torch or Lightning."""
    code = (
        "import sys; from curvecast.cli import main; "
        f"assert main(['analyze', {str(WILD / '112.csv')!r}, '--no-plot', '--json']) == 0; "
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'lightning') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"overfitting": {' in done.stdout
