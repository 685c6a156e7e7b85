import subprocess
import sys

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
