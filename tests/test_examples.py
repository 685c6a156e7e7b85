import importlib.util
from pathlib import Path

from run_helpers import read_events

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs_and_forecasts(tmp_path, capsys):
    quickstart = _load("quickstart")
    bundle = quickstart.main(max_steps=60, logdir=str(tmp_path))
    assert bundle.history.num_points("loss") == 60
    assert bundle.last_report is not None
    assert bundle.last_report.forecast.ok
    assert "forecast of the final loss" in capsys.readouterr().out
    event_dirs = {p.parent for p in tmp_path.rglob("events.out.tfevents.*")}
    assert "train_loss" in read_events(sorted(event_dirs)[0]).Tags()["scalars"]
