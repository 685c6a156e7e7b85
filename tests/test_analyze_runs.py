"""`curvecast analyze DIR` over a directory of runs: one table ranking them by forecast."""

from __future__ import annotations

import json

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger
from torch.utils.tensorboard import SummaryWriter

from curvecast.cli import main
from run_helpers import quiet_kwargs
from tests.test_false_alarms import WILD, wild_only
from tiny_models import LogsItsLoss, StopsAt, loader


def _write_run(path, floor: float, steps: int = 200) -> None:
    with SummaryWriter(log_dir=str(path)) as writer:
        for step in range(0, steps, 2):
            writer.add_scalar("train_loss", floor + 2.0 / (1.0 + step / 20.0), step)


def test_a_sweep_is_ranked_by_forecast_with_the_chance_to_beat_the_best(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for name, floor in (("lr_0.1", 1.5), ("lr_0.01", 1.0), ("lr_0.001", 2.0)):
        _write_run(sweep / name / "version_0", floor)
    _write_run(sweep / "lr_0.01" / "version_0" / "curvecast_forecast" / "step_00000100", 0.1)  # part of its run
    assert main(["analyze", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"3 runs under {sweep}, forecast to step 198 (series: train_loss)")
    order = [line.split()[1] for line in lines[2:]]
    assert order == ["lr_0.01/version_0", "lr_0.1/version_0", "lr_0.001/version_0"]

    assert main(["analyze", str(sweep), "--json", "--horizon", "400"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert [row["run"] for row in rows] == order
    assert all(row["horizon"] == 400 for row in rows)
    forecasts = [row["forecast"] for row in rows]
    assert forecasts == sorted(forecasts)
    chances = [row["chance_to_beat_best_other"] for row in rows]
    assert chances[0] > 0.5 > chances[2]  # the best run likely stays best; the worst hardly beats it
    assert chances == sorted(chances, reverse=True)
    np.testing.assert_allclose(forecasts, [1.0 + 2.0 / 21.0, 1.5 + 2.0 / 21.0, 2.0 + 2.0 / 21.0], rtol=0.05)


def test_a_run_that_cannot_be_analysed_is_listed_not_fatal(tmp_path, capsys):
    _write_run(tmp_path / "good", 1.0)
    _write_run(tmp_path / "short", 1.0, steps=6)  # three points: too few to forecast
    assert main(["analyze", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[1] == "good"
    assert out[3].split()[1] == "short"
    assert "not analysed: Expected at least 5 finite points" in out[3]


def test_a_directory_holding_one_run_is_that_run(tmp_path, capsys):
    _write_run(tmp_path / "only" / "version_0", 1.0)
    assert main(["analyze", str(tmp_path), "--no-plot"]) == 0
    assert "series: train_loss, 100 points" in capsys.readouterr().out


def test_a_target_is_a_column_of_the_ranking_and_a_plot_asked_for_is_refused(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for name, floor in (("reaches", 1.0), ("short_of_it", 2.0)):
        _write_run(sweep / name, floor)
    assert main(["analyze", str(sweep), "--target", "1.2", "--horizon", "400"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("target 1.2")
    steps = np.arange(0, 200, 2)
    logged = (1.0 + 2.0 / (1.0 + steps / 20.0)).astype(np.float32).astype(np.float64)  # TensorBoard keeps float32
    reached = int(steps[logged <= 1.2][0])
    assert lines[2].split()[1] == "reaches"
    assert lines[2].endswith(f"reached at step {reached}")
    assert lines[3].split()[1] == "short_of_it"
    assert "P(reach by the horizon) 0.00" in lines[3]

    assert main(["analyze", str(sweep), "--target", "1.2", "--horizon", "400", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == 1.2
    first, second = report["runs"]
    assert (first["target_reached_at"], second["target_reached_at"]) == (reached, None)
    assert second["target_chance"] < 0.01

    assert main(["analyze", str(sweep), "--plot", str(tmp_path / "plot.png")]) == 2
    assert "`--plot` draws one run" in capsys.readouterr().err
    assert not (tmp_path / "plot.png").exists()


def test_one_run_logged_by_two_loggers_into_two_directories_is_ranked_once(tmp_path, capsys):
    # A TensorBoardLogger and a CSVLogger given their own names: the same run's curve in two places (float32 in one).
    sweep = tmp_path / "logs"
    _write_run(sweep / "tb" / "version_0", 1.0)
    _write_run(sweep / "other" / "version_0", 1.5)
    csv_dir = sweep / "csv" / "version_0"
    csv_dir.mkdir(parents=True)
    rows = [f"{step},{1.0 + 2.0 / (1.0 + step / 20.0)!r}" for step in range(0, 200, 2)]
    (csv_dir / "metrics.csv").write_text("step,train_loss\n" + "\n".join(rows) + "\n")
    assert main(["analyze", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"2 runs (3 logs) under {sweep}")
    assert [line.split()[1] for line in lines[2:4]] == ["csv/version_0", "other/version_0"]
    assert "another log of csv/version_0 (the same curve): not ranked" in lines[4]
    assert main(["analyze", str(sweep), "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)["runs"]
    assert [row.get("same_as") for row in ranked] == [None, None, "csv/version_0"]
    assert ranked[0]["chance_to_beat_best_other"] > 0.9  # not an even chance against a copy of itself


def test_a_lightning_sweep_and_each_of_its_runs_agree_on_the_planned_end(tmp_path, capsys):
    """Lightning with max_steps=300 takes steps 0..299 and logs each value at the index of its step: the last logged
    step, and the planned end on that axis, is 299, whether one run is analysed or the sweep. A run stopped at step
    150 is forecast to 299 both ways."""
    sweep = tmp_path / "sweep"
    for name, callbacks in (("full", []), ("stopped", [StopsAt(150)])):
        logger = CSVLogger(sweep, name=name)
        logger.log_hyperparams({"max_steps": 300})
        trainer = pl.Trainer(callbacks=callbacks, **quiet_kwargs(tmp_path, logger=logger, max_steps=300,
                                                                 log_every_n_steps=10))  # fmt: skip
        trainer.fit(LogsItsLoss(lr=0.01), loader(n=640))
    with open(sweep / "full" / "version_0" / "metrics.csv") as handle:
        assert handle.read().splitlines()[-1].split(",")[1] == "299"  # the last step Lightning logs
    assert main(["analyze", str(sweep / "stopped" / "version_0"), "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert (single["horizon"], single["planned_end"]["step"]) == (299, 299)
    assert main(["analyze", str(sweep), "--json"]) == 0
    assert [row["horizon"] for row in json.loads(capsys.readouterr().out)["runs"]] == [299, 299]
    assert main(["analyze", str(sweep)]) == 0
    assert capsys.readouterr().out.startswith(f"2 runs under {sweep}, forecast to step 299")


@wild_only
def test_a_run_of_a_sweep_that_overfits_is_told_below_the_ranking(tmp_path, capsys):
    """Wild log 112 overfits (val_loss 0.059 -> 0.099 while train_loss falls); wild log 004 does not."""
    for run, log in (("run_a", "112"), ("run_b", "004")):
        (tmp_path / run).mkdir()
        (tmp_path / run / "metrics.csv").write_bytes((WILD / f"{log}.csv").read_bytes())
    assert main(["analyze", str(tmp_path), "--no-plot"]) == 0
    told = [line for line in capsys.readouterr().out.splitlines() if "overfits" in line]
    assert len(told) == 1
    assert told[0].startswith("  run_a: `val_loss` overfits (told at step 8441): val_loss got worse at each of")
    assert main(["analyze", str(tmp_path), "--json"]) == 0
    rows = {row["run"]: row for row in json.loads(capsys.readouterr().out)["runs"]}
    assert rows["run_a"]["overfitting"] == {"series": "val_loss", "told_at": 8441}
    assert rows["run_b"]["overfitting"] is None
