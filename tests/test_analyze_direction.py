"""`curvecast analyze` of a metric that should rise: its direction and range from its name, or as the user says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curvecast.cli import main
from curvecast.metric_direction import metric_direction
from curvecast.offline.analyze import analyze
from curvecast.offline.runs import rank_runs


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("val_acc", [0.2, 0.9], ("max", (0.0, 1.0))),
        ("val/accuracy_epoch", [20.0, 91.0], ("max", (0.0, 100.0))),
        ("top5", [0.2, 0.9], ("max", (0.0, 1.0))),
        ("eval/f1", [0.2, 0.9], ("max", (0.0, 1.0))),
        ("map@50", [0.2, 0.9], ("max", (0.0, 1.0))),
        ("episode_return", [-5.0, 200.0], ("max", None)),
        ("val_acc", [-0.1, 0.9], ("max", None)),  # not a fraction after all: no range is assumed
        ("train_loss", [2.0, 0.1], ("min", None)),
        ("val_acc_loss", [2.0, 0.1], ("min", None)),  # a loss of some accuracy-named head is still a loss
        ("perplexity", [900.0, 20.0], ("min", None)),
        ("learning_rate", [0.1, 0.01], ("min", None)),
    ],
)
def test_direction_and_range_are_read_from_the_name(name, values, expected):
    assert metric_direction(name, np.array(values)) == expected


def test_what_the_user_says_wins():
    assert metric_direction("val_acc", np.array([0.5]), mode="min") == ("min", None)
    assert metric_direction("val_acc", np.array([0.5]), bounds=(0.0, None)) == ("max", (0.0, None))


def _accuracy_log(path: Path, ceiling: float, epochs: int = 30) -> Path:
    """A CSVLogger ``metrics.csv`` of a ``val_acc`` rising towards ``ceiling`` (one point per epoch of 50 steps)."""
    rng = np.random.default_rng(0)
    rows = ["epoch,step,val_acc"]
    for epoch in range(epochs):
        acc = ceiling - (ceiling - 0.3) * (1 + epoch) ** -0.8 + 0.004 * rng.standard_normal()
        rows.append(f"{epoch},{50 * epoch + 49},{acc:.5f}")
    path.mkdir(parents=True)
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    return path


def test_a_rising_accuracy_is_forecast_rising_and_inside_its_range(tmp_path):
    run = _accuracy_log(tmp_path / "run", ceiling=0.95, epochs=12)
    analysis = analyze(run, tag="val_acc", horizon=50 * 40)

    assert (analysis.mode, analysis.bounds) == ("max", (0.0, 1.0))
    last = float(analysis.curve.values[-1])
    lo, hi = analysis.forecast.interval(0.95)
    assert analysis.forecast.final > last  # it keeps rising
    assert 0.0 <= lo <= hi <= 1.0
    # Told the other way, it is a falling metric: the forecast goes down from where it is.
    assert analyze(run, tag="val_acc", horizon=50 * 40, mode="min").forecast.final < last


def test_runs_of_a_score_are_ranked_highest_first_with_the_chance_to_beat_the_best(tmp_path, capsys):
    for name, ceiling in (("low", 0.8), ("high", 0.95)):
        _accuracy_log(tmp_path / "sweep" / name, ceiling)
    ranked = rank_runs([tmp_path / "sweep" / "low", tmp_path / "sweep" / "high"], tag="val_acc")
    assert [r.path.name for r in ranked] == ["high", "low"]
    assert ranked[0].chance_to_beat > 0.9 > 0.1 > ranked[1].chance_to_beat

    assert main(["analyze", str(tmp_path / "sweep"), "--tag", "val_acc", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in report["runs"]] == ["high", "low"]


def test_the_command_line_takes_mode_and_bounds(tmp_path, capsys):
    run = _accuracy_log(tmp_path / "run", ceiling=0.95)
    assert main(["analyze", str(run), "--tag", "val_acc", "--bounds", "0", "none", "--target", "0.9", "--json",
                 "--no-plot", "--horizon", "2000"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert (report["mode"], report["bounds"]) == ("max", [0.0, None])
    assert report["forecast"]["prob_better"] == pytest.approx(1.0 - report["forecast"]["prob_below"])

    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(run), "--bounds", "0", "high"])
    assert exit_info.value.code == 2
    assert "expected a number or 'none', but got 'high'" in capsys.readouterr().err
    assert main(["analyze", str(run), "--tag", "val_acc", "--bounds", "1", "0", "--no-plot"]) == 2
    assert "`bounds` must satisfy lo < hi" in capsys.readouterr().err
