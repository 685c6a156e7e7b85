import subprocess
import sys

import numpy as np
import pytest

from curvecast.cli import build_parser, main


def test_help_explains_each_command():
    result = subprocess.run(
        [sys.executable, "-m", "curvecast", "--help"], capture_output=True, text=True, check=True, timeout=120
    )
    assert "demo" in result.stdout
    assert "analyze" in result.stdout


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_demo_trains_writes_tensorboard_logs_and_prints_a_forecast(tmp_path, capsys):
    assert main(["demo", "--steps", "80", "--logdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== width_48: 80 of 80 steps ==" in out
    assert "forecast at step 80:" in out
    assert f"tensorboard --logdir {tmp_path}" in out
    # Both runs wrote TensorBoard event files, with curvecast's forecast scalars among their tags.
    runs = {p.parent.name for p in (tmp_path / "demo").rglob("events.out.tfevents.*")}
    assert {"width_48", "width_16"} <= runs


def test_the_report_says_when_the_target_was_reached_and_what_was_observed():
    from curvecast.forecasting import Forecaster, Report
    from curvecast.forecasting.report import target_chance
    from curvecast.render.text import describe_report

    steps = np.arange(300)
    values = 2.0 + 3.0 / (1.0 + steps / 20.0)
    forecast = Forecaster().fit(steps, values, horizon=300)
    reached = int(np.flatnonzero(values <= 2.5)[0])
    chance = target_chance(forecast, 2.5)
    report = Report(step=299, monitor="loss", horizon=300, forecast=forecast, target=2.5, observed=float(values[-1]),
                    best=float(values.min()), reached_at=reached, target_chance=chance)  # fmt: skip
    text = describe_report(report)
    assert text.splitlines()[0] == f"loss at step 299 of 300: {values[-1]:.4g} (best {values.min():.4g})"
    assert f"target 2.5: reached at step {reached}; chance to end below it {report.target_chance:.2f}" in text
    assert "model" not in text
    assert "theta" not in text


def test_the_demo_prints_each_line_once_and_no_warning_about_its_own_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "curvecast", "demo", "--steps", "30", "--logdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    printed = result.stdout + result.stderr
    assert printed.count("GPU available") == 2  # once for each of the two runs, not again through the root logger
    assert "Embedding layer sees inputs without the batch dimension" not in printed
    assert "Traceback" not in printed
