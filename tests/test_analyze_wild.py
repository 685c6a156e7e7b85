"""`curvecast analyze` reads a log as its owner would: the densest useful loss, the run's own horizon, NaN as news.

Real third-party Lightning logs (``shared/data/wild``, a ``metrics.csv`` each) and small synthetic logs: a
curvecast run's event file, ``hparams.yaml``/``config.yaml`` beside a ``metrics.csv``, an all-NaN loss.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from curvecast.cli import main
from curvecast.offline.analysis import analyze
from curvecast.offline.plot import plot_title
from curvecast.render.figure import forecast_figure
from curvecast.render.text import fmt

WILD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wild"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def wild_dir() -> Path:
    if not WILD_DIR.is_dir():
        pytest.skip(f"the real Lightning logs are not at {WILD_DIR}")
    return WILD_DIR


def wild_log(wild_dir: Path, tmp_path: Path, name: str) -> Path:
    """A copy of one real log in ``tmp_path``, as its run directory's ``metrics.csv`` (the plot lands beside it)."""
    run = tmp_path / name
    run.mkdir()
    shutil.copy(wild_dir / f"{name}.csv", run / "metrics.csv")
    return run / "metrics.csv"


def analyze_json(capsys: pytest.CaptureFixture[str], *argv: object) -> dict:
    status = main(["analyze", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def analyze_text(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    status = main(["analyze", *map(str, argv)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def lightning_csv(path: Path, steps_per_epoch: int, epochs: int, every: int = 10, loss=None) -> Path:
    """A CSVLogger ``metrics.csv``: ``train_loss_step`` every ``every`` steps, ``train_loss_epoch`` and ``val_loss``
    at each epoch's last step, with the ``epoch`` column Lightning writes in every row."""
    loss = loss or (lambda step: 0.5 + 2.0 / (1.0 + step / 30.0) ** 0.7)
    rows = ["epoch,step,train_loss_step,train_loss_epoch,val_loss"]
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            if (step + 1) % every == 0:
                rows.append(f"{epoch},{step},{loss(step) * (1 + 0.02 * rng.standard_normal()):.6f},,")
        end = (epoch + 1) * steps_per_epoch - 1
        rows.append(f"{epoch},{end},,{loss(end):.6f},{loss(end) + 0.1:.6f}")
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    return path / "metrics.csv"


# -- the series read by default ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "series", "points"),
    [
        ("073", "train_loss_epoch", 10),  # train_loss_step: 1 point
        ("089", "train_loss_epoch", 100),  # train_loss_step: 2 points
        ("104", "train_loss_epoch", 14),  # train_loss_step: 1 point
        ("141", "train/loss_epoch", 76),  # train/loss_step: 1 point
        ("004", "val_loss", 100),  # loss: 4 points
        ("068", "val_loss", 13),  # train_loss: 3 points
        ("009", "val_loss", 100),  # train_loss: 8 points, too sparse beside it
        ("092", "val_loss_step", 237),  # train_loss_step: 9 points
        ("000", "train_loss_step", 114),  # train_loss_epoch and val_loss: 20 points each
        ("183", "train_loss", 64),  # val_loss has 101: the training loss is dense enough
    ],
)
def test_the_densest_useful_loss_is_read(
    wild_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, series: str, points: int
) -> None:
    report = analyze_json(capsys, wild_log(wild_dir, tmp_path, name), "--no-plot")
    assert (report["series"]["name"], report["series"]["points"]) == (series, points)


def _curvecast_run(path: Path, horizon: int | None) -> Path:
    """The event file of a curvecast run: Lightning's ``train_loss`` every 10 steps, curvecast's own record of the
    loss every step (``curvecast/loss``) and LR, its forecast scalars and (with ``horizon``) its forecast documents."""
    from torch.utils.tensorboard import SummaryWriter

    from curvecast.tensorboard_plugin.summary import FORECAST_TAG, json_summary

    writer = SummaryWriter(str(path), max_queue=10_000, flush_secs=3600)
    for step in range(240):
        loss = 1.0 + 3.0 / (1.0 + step / 20.0) + 0.05 * np.sin(step)
        writer.add_scalar("curvecast/loss", loss, step)
        writer.add_scalar("curvecast/lr", 1e-3, step)
        if (step + 1) % 10 == 0:
            writer.add_scalar("train_loss", loss, step)
            writer.add_scalar("epoch", 0.0, step)
        if step and step % 60 == 0:
            writer.add_scalar("curvecast/forecast/final", 1.2, step)
            if horizon is not None:
                document = {"step": step, "monitor": "loss", "horizon": horizon, "final": 1.2}
                writer._get_file_writer().add_summary(json_summary(FORECAST_TAG, document), step)
    writer.close()
    return path


def test_a_curvecast_run_is_read_from_its_own_record_to_its_own_horizon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _curvecast_run(tmp_path / "run", horizon=1000)
    report = analyze_json(capsys, run, "--no-plot")
    assert (report["series"]["name"], report["series"]["points"]) == ("curvecast/loss", 240)
    assert report["horizon"] == 999  # steps are logged from 0: the 1000th step is step 999
    assert report["horizon_source"] == "planned"
    assert "curvecast's forecasts" in report["planned_end"]["source"]
    assert report["forecast"]["beyond_log"]
    assert report["forecast"]["interval_80"][0] <= report["forecast"]["final"] <= report["forecast"]["interval_80"][1]
    assert analyze(run, tag="train_loss").curve.name == "train_loss"  # the module's own series, when asked for


# -- the horizon ---------------------------------------------------------------------------------------------------


def test_without_records_the_log_end_is_reported_not_forecast(
    wild_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = wild_log(wild_dir, tmp_path, "038")  # its 80% interval at the last step left out the value logged there
    out = analyze_text(capsys, log, "--no-plot")
    analysis = analyze(log)
    last = analysis.curve.values[-1]
    assert "the log ends at step 449; --horizon STEP forecasts beyond it" in out
    assert "forecast at step" not in out
    assert "interval" not in out
    assert f"at step 449, the end of the log: logged {fmt(last)}" in out
    lo, hi, count = analysis.scatter(0.8)
    assert count
    assert lo <= last - analysis.forecast.final <= hi  # the logged value lies within the scatter told
    report = analyze_json(capsys, log, "--no-plot")
    assert report["horizon_source"] == "end of log"
    assert not report["forecast"]["beyond_log"]
    assert report["forecast"]["observed"] == pytest.approx(last)
    assert "interval_80" not in report["forecast"]
    # Asked to go beyond the log, it forecasts with an interval.
    beyond = analyze_json(capsys, log, "--no-plot", "--horizon", "900")
    assert beyond["horizon_source"] == "given"
    assert beyond["forecast"]["beyond_log"]
    assert "interval_80" in beyond["forecast"]


def test_max_steps_in_hparams_yaml_is_the_horizon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = lightning_csv(tmp_path / "version_0", steps_per_epoch=50, epochs=6)
    (log.parent / "hparams.yaml").write_text("lr: 0.001\nmax_steps: 2000\nscheduler:\n  max_steps: 10\n")
    report = analyze_json(capsys, log, "--no-plot")
    assert report["horizon"] == 1999
    assert report["planned_end"] == {"step": 1999, "source": "max_steps: 2000 in hparams.yaml"}
    assert report["forecast"]["beyond_log"]
    out = analyze_text(capsys, log.parent, "--no-plot")
    assert "horizon: step 1999, the run's planned end (max_steps: 2000 in hparams.yaml)" in out
    assert "forecast at step 1999:" in out


def test_max_epochs_of_a_lightning_cli_config_is_the_horizon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = lightning_csv(tmp_path / "version_0", steps_per_epoch=50, epochs=6)
    (log.parent / "config.yaml").write_text("trainer:\n  max_epochs: 20\n  max_steps: -1\nmodel:\n  width: 8\n")
    report = analyze_json(capsys, log, "--no-plot")
    assert report["horizon"] == 20 * 50 - 1
    assert report["planned_end"]["source"] == "max_epochs: 20 in config.yaml, at 50 steps an epoch"


def test_a_run_that_reached_its_planned_end_has_nothing_left_to_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = lightning_csv(tmp_path / "version_0", steps_per_epoch=50, epochs=6)
    (log.parent / "hparams.yaml").write_text("max_epochs: 6\n")
    out = analyze_text(capsys, log, "--no-plot", "--target", "1.0")
    assert "horizon: the run reached its planned end, step 299 (max_epochs: 6 in hparams.yaml" in out
    assert "at step 299, the end of the log: logged" in out
    assert "target 1: reached at step" in out  # the log says when, not a chance


def test_a_record_that_ends_before_the_log_is_not_its_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = lightning_csv(tmp_path / "version_0", steps_per_epoch=50, epochs=6)
    (log.parent / "hparams.yaml").write_text("max_steps: 100\n")  # some other part's: the log goes to 299
    report = analyze_json(capsys, log, "--no-plot")
    assert (report["horizon"], report["horizon_source"]) == (299, "end of log")


# -- non-finite values ---------------------------------------------------------------------------------------------


def test_an_all_nan_loss_is_reported_as_non_finite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.csv"
    log.write_text("step,train_loss\n" + "".join(f"{step},nan\n" for step in range(20)))
    out = analyze_text(capsys, log, "--no-plot")
    assert "no fit: only 0 of the 20 logged values are finite; a forecast needs 5" in out
    assert "[critical] nonfinite at step 0: train_loss became nan at step 0" in out
    report = analyze_json(capsys, log, "--no-plot")
    assert not report["forecast"]["ok"]
    assert [event["kind"] for event in report["anomalies"]] == ["nonfinite"]


def test_a_jump_quotes_the_level_it_judged_not_the_point_logged_there(
    wild_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Log 060's training loss blows up from 0.003 to 590 at step 349; the jump is judged on the median of the last 3
    # points (37.65), which the message names as such beside the value logged at that step.
    report = analyze_json(capsys, wild_log(wild_dir, tmp_path, "060"), "--no-plot")
    (jump,) = [e for e in report["anomalies"] if e["kind"] == "divergence" and "jumped" in e["message"]]
    assert jump["step"] == 349
    assert jump["value"] == pytest.approx(589.6, rel=1e-3)
    assert "jumped to 37.65 (the median of its last 3 points) at step 349" in jump["message"]


def test_spikes_a_million_fold_among_few_points_are_reported(
    wild_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Log 017: a VAE's per-batch NLL near 140, at 5e9-1.2e14 on 5 of its 14 logged batches (two within the alarms'
    # warm-up). The spikes made the noise estimates as large as themselves: none was reported.
    report = analyze_json(capsys, wild_log(wild_dir, tmp_path, "017"), "--no-plot")
    spikes = [(e["step"], e["severity"]) for e in report["anomalies"] if e["kind"] == "spike"]
    assert spikes == [(299, "warning"), (449, "warning")]


def test_a_loss_that_turns_nan_early_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.csv"
    log.write_text("step,loss\n0,3.0\n1,2.5\n2,2.2\n" + "".join(f"{step},inf\n" for step in range(3, 30)))
    report = analyze_json(capsys, log, "--no-plot")
    assert report["forecast"]["reason"] == "only 3 of the 30 logged values are finite; a forecast needs 5"
    assert any(event["kind"] == "nonfinite" and event["step"] == 3 for event in report["anomalies"])


# -- the plot ------------------------------------------------------------------------------------------------------


def test_the_plot_lands_beside_the_log_titled_in_words(
    wild_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = wild_log(wild_dir, tmp_path, "060")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = analyze_json(capsys, log, "--horizon", "8000")
    assert report["plot"] == str(log.parent / "060.curvecast.png")
    assert (log.parent / "060.curvecast.png").read_bytes().startswith(PNG_SIGNATURE)
    assert not list(elsewhere.iterdir())
    analysis = analyze(log, horizon=8000)
    assert plot_title(analysis) == "train_loss of 060: forecast at step 8000"
    end = "train_loss of 060: fit to the end of the log at step 5299 (no forecast beyond it)"
    assert plot_title(analyze(log)) == end


def test_a_loss_falling_ten_thousand_fold_is_drawn_on_a_log_axis(wild_dir: Path, tmp_path: Path) -> None:
    analysis = analyze(wild_log(wild_dir, tmp_path, "060"), horizon=8000)  # 37.6 down to 0.002
    curve, forecast = analysis.curve, analysis.forecast
    fig = forecast_figure(curve.steps, curve.values, forecast, title=plot_title(analysis), label=curve.name)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert forecast.model not in ax.get_title()
    assert "model" not in ax.get_title()
    assert "train_loss of 060: forecast at step 8000" in ax.get_title()
    steps = np.arange(100)
    narrow = forecast_figure(steps, 2.0 + 1.0 / (1 + steps), forecast)
    assert narrow.axes[0].get_yscale() == "linear"
    signed = forecast_figure(steps, np.linspace(-1.0, 1000.0, 100), forecast)  # not all positive: no log axis
    assert signed.axes[0].get_yscale() == "linear"


def test_curvecast_record_of_a_validation_monitor_is_not_taken_for_the_training_loss(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as writer:
        for step in range(60):
            writer.add_scalar("curvecast/val_loss", 2.0 / (1 + step), step)
            writer.add_scalar("curvecast/val_acc", 1.0 - 1.0 / (2 + step), step)
            if step % 5 == 4:
                writer.add_scalar("train_loss", 1.0 / (1 + step), step)
    assert analyze(tmp_path).curve.name == "train_loss"


def test_a_dqn_log_names_its_return_beside_the_loss_analysed(wild_dir, tmp_path, capsys):
    # Lightning's DQN example logged: its TD loss is picked as the loss, and its owner reads the return.
    log = wild_log(wild_dir, tmp_path, "071")
    assert main(["analyze", str(log), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "series: train_loss" in out
    assert "also logged: `episode reward`, an RL agent's return (`--tag 'episode reward'` forecasts it)" in out


def _rl_log(path: Path, with_return: bool) -> Path:
    """A log whose loss climbs tenfold as an agent learns (a TD loss regresses on growing returns)."""
    rng = np.random.default_rng(0)
    steps = np.arange(1, 201) * 10
    loss = np.linspace(0.1, 1.0, steps.size) * np.exp(0.05 * rng.standard_normal(steps.size))
    header = "step,train_loss" + (",total_reward" if with_return else "")
    rows = [f"{s},{float(v)!r}" + (f",{20 + s / 10}" if with_return else "") for s, v in zip(steps, loss, strict=True)]
    path.mkdir()
    (path / "metrics.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return path / "metrics.csv"


def test_a_loss_climbing_beside_a_logged_return_is_noted_not_warned(tmp_path):
    alone = analyze(_rl_log(tmp_path / "alone", with_return=False))
    assert {e.severity for e in alone.anomalies if e.kind == "divergence"} & {"warning", "critical"}
    beside = analyze(_rl_log(tmp_path / "beside", with_return=True))
    climbs = [e for e in beside.anomalies if e.kind == "divergence"]
    assert climbs
    assert {e.severity for e in climbs} == {"info"}
    assert all("The run logs `total_reward`, a return" in e.message for e in climbs)
    assert all("`--tag total_reward` watches" in e.message for e in climbs)
    assert beside.returns == ["total_reward"]
