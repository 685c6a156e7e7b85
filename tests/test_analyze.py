"""`curvecast analyze`: real curves as event files, CSV and JSONL; a Lightning run's own logs; bad inputs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from test_logs import MNG_RUN, read_curve_csv, write_events
from torch.utils.data import DataLoader, TensorDataset

from curvecast.offline.analysis import bucket_maxima
from curvecast.offline.analyze import EXIT_INPUT, EXIT_USAGE, add_analyze_arguments, analyze, run_analyze
from run_helpers import tiny_trainer

DIVERGED_RUN = "algoperf__v05_generalized_adam_s0_imagenet_vit_jax_t1"  # 10 points, the loss blows up after step 5000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="curvecast analyze")
    add_analyze_arguments(parser)
    return parser.parse_args([str(arg) for arg in argv])


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    status = run_analyze(cli(*argv, "--json"))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture
def mng_events(curves_dir: Path, tmp_path: Path) -> Path:
    log_dir = tmp_path / "mng"
    write_events(log_dir, read_curve_csv(curves_dir / f"{MNG_RUN}.csv"))
    return log_dir


def test_real_curve_from_event_files(
    mng_events: Path, curves_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "plot.png"
    report = run_json(capsys, mng_events, "--plot", plot, "--target", "3.3")
    assert report["format"] == "tensorboard"
    assert report["series"] == {
        "name": "train_loss", "points": 3200, "first_step": 1, "last_step": 3200,
        "last_value": pytest.approx(3.2243, rel=1e-6), "min_value": pytest.approx(2.9893, rel=1e-6),
    }  # fmt: skip
    assert report["lr"] == {"name": "lr", "used": True}
    assert report["horizon"] == 3200
    forecast = report["forecast"]
    assert forecast["ok"], forecast["reason"]
    # The horizon is the last logged step: the fit there is the smoothed end of the curve, within 1% of its last
    # hundred points, beside the value logged there; the log itself says when the target 3.3 was first reached.
    _, values = read_curve_csv(curves_dir / f"{MNG_RUN}.csv")["train_loss"]
    assert forecast["final"] == pytest.approx(np.mean(values[-100:]), rel=0.01)
    assert not forecast["beyond_log"]
    assert forecast["observed"] == pytest.approx(3.2243, rel=1e-6)
    assert forecast["reached_at"] == 1 + int(np.flatnonzero(values <= 3.3)[0])
    assert any(event["kind"] == "spike" for event in report["anomalies"])  # the run has transient spikes
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    assert report["plot"] == str(plot)


def test_a_target_the_log_reached_is_reached_there_when_the_forecast_goes_past_the_log(
    mng_events: Path, curves_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, values = read_curve_csv(curves_dir / f"{MNG_RUN}.csv")["train_loss"]
    reached = 1 + int(np.flatnonzero(values <= 3.3)[0])
    args = (mng_events, "--plot", tmp_path / "plot.png", "--target", "3.3", "--horizon", "6000")
    forecast = run_json(capsys, *args)["forecast"]
    assert forecast["beyond_log"]
    assert forecast["reached_at"] == forecast["step_to_reach"] == reached
    assert run_analyze(cli(*args)) == 0
    text = capsys.readouterr().out
    assert f"target 3.3: reached at step {reached};" in text
    assert "forecast to be reached" not in text


def test_same_curve_as_csv_and_jsonl_gives_the_same_forecast(
    curves_dir: Path, mng_events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    columns = read_curve_csv(curves_dir / f"{MNG_RUN}.csv")
    jsonl = tmp_path / "run.jsonl"
    steps, values = columns["train_loss"]
    jsonl.write_text(
        "\n".join(json.dumps({"step": int(s), "loss": float(v)}) for s, v in zip(steps, values, strict=True))
    )
    from_events = run_json(capsys, mng_events, "--no-plot", "--horizon", "6400")
    from_csv = run_json(capsys, curves_dir / f"{MNG_RUN}.csv", "--no-plot", "--horizon", "6400")
    from_jsonl = run_json(capsys, jsonl, "--no-plot", "--horizon", "6400")
    assert from_csv["lr"] == {"name": "lr", "used": False}  # the LR log ends at 3200: the future schedule is unknown
    assert from_jsonl["lr"] == {"name": None, "used": False}
    finals = [report["forecast"]["final"] for report in (from_events, from_csv, from_jsonl)]
    assert finals[0] == pytest.approx(finals[1], rel=1e-3)  # event files hold float32
    assert finals[1] == pytest.approx(finals[2], rel=1e-9)


def test_diverged_run_reports_a_critical_divergence(
    curves_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_events(tmp_path, read_curve_csv(curves_dir / f"{DIVERGED_RUN}.csv"))
    status = run_analyze(cli(tmp_path, "--plot", tmp_path / "d.png"))
    out = capsys.readouterr().out
    assert status == 0
    assert "[critical] divergence" in out
    assert "series: train_loss, 10 points" in out


class LoggingModule(pl.LightningModule):
    """A linear regression logging its loss every step, with a decaying LR."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.02)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def test_lightning_run_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=generator)
    data = TensorDataset(x, x @ torch.arange(1.0, 5.0) + 0.1 * torch.randn(128, generator=generator))
    tensorboard, csv_logger = TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv")
    callbacks = [LearningRateMonitor(logging_interval="step")]
    trainer = tiny_trainer(tmp_path, callbacks, 64, logger=[tensorboard, csv_logger], log_every_n_steps=1)
    trainer.fit(LoggingModule(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=64))
    from_tb = run_json(capsys, tensorboard.log_dir, "--no-plot")
    from_csv = run_json(capsys, Path(csv_logger.log_dir) / "metrics.csv", "--no-plot")
    for report in (from_tb, from_csv):
        assert report["series"]["name"] == "train_loss_step"
        assert report["series"]["points"] == 64
        assert report["series"]["last_step"] == 63
        assert report["lr"] == {"name": "lr-SGD", "used": True}
        assert report["forecast"]["ok"], report["forecast"]["reason"]
        assert "val_loss" in report["series_available"]
    assert from_tb["forecast"]["final"] == pytest.approx(from_csv["forecast"]["final"], rel=1e-3)


def test_bucket_maxima_keeps_spikes_and_nonfinite_values() -> None:
    steps = np.arange(10)
    values = np.array([1.0, 5.0, 1.0, 1.0, np.nan, 2.0, 1.0, 1.0, 3.0, 0.5])
    thinned_steps, thinned = bucket_maxima(steps, values, 3)
    np.testing.assert_array_equal(thinned_steps, [1, 4, 8, 9])
    np.testing.assert_array_equal(thinned, [5.0, np.nan, 3.0, 0.5])


def test_long_curve_is_searched_on_bucket_maxima(tmp_path: Path) -> None:
    steps = np.arange(120_000)
    values = 2.0 * (1 + steps / 1000) ** -0.3 + 0.01 * np.random.default_rng(0).standard_normal(len(steps))
    values[90_001] = np.nan
    path = tmp_path / "long.csv"
    np.savetxt(path, np.column_stack([steps, values]), delimiter=",", header="step,loss", comments="", fmt="%.8g")
    analysis = analyze(path)
    assert analysis.anomaly_bucket == 3
    assert analysis.forecast.ok
    assert any(event.kind == "nonfinite" and event.step == 90_001 for event in analysis.anomalies)


def _expect_error(capsys: pytest.CaptureFixture[str], argv: list, status: int, message: str) -> None:
    assert run_analyze(cli(*argv)) == status
    err = capsys.readouterr().err
    assert err.startswith("curvecast analyze: error: ")
    assert message in err
    assert "Traceback" not in err


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_error(capsys, [tmp_path / "missing"], EXIT_INPUT, "does not exist")
    few = tmp_path / "few"
    write_events(few, {"loss": (np.arange(3), np.array([3.0, 2.0, 1.0])), "acc": (np.arange(3), np.ones(3))})
    _expect_error(capsys, [few, "--no-plot"], EXIT_INPUT, "Expected at least 5 finite points in `loss`")
    _expect_error(capsys, [few, "--tag", "nope"], EXIT_INPUT, "but got 'nope'. The series are: acc, loss")
    good = tmp_path / "good"
    file = write_events(good, {"loss": (np.arange(40), np.linspace(3, 1, 40))})
    _expect_error(capsys, [good, "--horizon", "10"], EXIT_USAGE, "at or after the last logged step 39, but got 10")
    _expect_error(capsys, [good, "--plot", tmp_path / "no" / "such" / "dir.png"], EXIT_INPUT, "Cannot write the plot")
    file.write_bytes(file.read_bytes()[:-3])
    _expect_error(capsys, [good, "--no-plot"], EXIT_INPUT, "the event file is truncated")
    garbage = tmp_path / "events.out.tfevents.1.host"
    garbage.write_bytes(bytes(range(256)) * 4)
    _expect_error(capsys, [garbage, "--no-plot"], EXIT_INPUT, str(garbage))


def test_command_line_error_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "curvecast", "analyze", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == EXIT_INPUT
    assert "Expected a log directory or file, but" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_plot_is_named_after_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "logs" / "version_3"
    write_events(run_dir, {"train_loss": (np.arange(40), np.linspace(3, 1, 40) ** 2)})
    monkeypatch.chdir(tmp_path)
    assert run_analyze(cli(run_dir)) == 0
    assert f"plot: {run_dir / 'version_3.curvecast.png'}" in capsys.readouterr().out  # beside the log
    assert (run_dir / "version_3.curvecast.png").read_bytes().startswith(PNG_SIGNATURE)
    event_file = next(run_dir.glob("events.out.tfevents.*"))
    assert run_analyze(cli(event_file, "--json")) == 0
    assert json.loads(capsys.readouterr().out)["plot"] == str(run_dir / "version_3.curvecast.png")
