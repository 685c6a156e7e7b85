"""The curvecast tab's comparison of runs: it follows the runs as they write (a real ``tensorboard`` reloading a log
directory that a second real run joins), ranks and gives chances with the code ``curvecast analyze DIR`` uses, and
draws a monitor's anomalies at their own values, which the writer keeps across a resume."""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from curvecast import Curvecast
from curvecast.forecasting import Forecaster
from curvecast.forecasting.anomalies import Anomaly
from curvecast.forecasting.ranking import FinalDistribution, chances_to_end_best, ranking_order
from curvecast.integrations.tab_documents import RecentAnomalies
from curvecast.offline.runs import rank_runs
from curvecast.tensorboard_plugin.run_data import with_anomalies
from run_helpers import TensorBoardServer, tiny_trainer
from tiny_models import CurveModule


def _fit(root: Path, name: str, floor: float) -> Curvecast:
    bundle = Curvecast(forecast_every=20, background=False, forecast_budget=None)
    logger = TensorBoardLogger(str(root), name=name, version=0)
    tiny_trainer(root, [bundle], 120, logger=logger, max_epochs=1).fit(CurveModule(120, floor=floor))
    return bundle


def _compare(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/data/plugin/curvecast/compare", timeout=60) as response:
        return json.loads(response.read())


def test_the_comparison_follows_the_runs_as_they_write(tmp_path):
    log = logging.getLogger("curvecast")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        first = _fit(tmp_path, "first", floor=2.0)
        # A loader that reads the directory again every second, as `tensorboard --logdir` does (every 5 s by default).
        with TensorBoardServer(tmp_path, "python", "--reload_task", "thread", "--reload_interval", "1") as tensorboard:
            rows = []
            for _ in range(600):  # 30 s at most
                rows = _compare(tensorboard.url)["runs"]
                if [r["run"] for r in rows] == ["first/version_0"]:
                    break
                time.sleep(0.05)
            assert [r["run"] for r in rows] == ["first/version_0"]
            assert rows[0]["chance_best"] is None  # no other run to beat
            second = _fit(tmp_path, "second", floor=1.0)  # a better run starts writing while the tab is open
            data: dict = {}
            for _ in range(600):
                data = _compare(tensorboard.url)
                if len(data["runs"]) == 2 and data["runs"][0]["step"] == second.last_report.step:
                    break
                time.sleep(0.05)
    finally:
        log.setLevel(level)
    assert [r["run"] for r in data["runs"]] == ["second/version_0", "first/version_0"]
    endings = [FinalDistribution.of(b.last_report.forecast) for b in (second, first)]
    assert [r["chance_best"] for r in data["runs"]] == pytest.approx(chances_to_end_best(endings, "min"), rel=1e-9)
    assert sorted(d["run"] for d in data["drawn"]) == ["first/version_0", "second/version_0"]


def _write_run(path: Path, floor: float, seed: int, steps: int = 200) -> None:
    noise = np.random.default_rng(seed).normal(0.0, 0.03, steps)
    with SummaryWriter(log_dir=str(path)) as writer:
        for step in range(0, steps, 2):
            writer.add_scalar("train_loss", (floor + 2.0 / (1.0 + step / 20.0)) * math.exp(noise[step]), step)


def test_analyze_dir_keeps_its_chances_through_the_shared_code(tmp_path):
    """``rank_runs`` gives each run the chance its Forecast gives of ending below the best forecast of the others."""
    for seed, (name, floor) in enumerate((("a", 1.5), ("b", 1.0), ("c", 1.02))):
        _write_run(tmp_path / name, floor, seed)
    ranked = rank_runs([tmp_path / name for name in "abc"])
    assert [r.path.name for r in ranked] == ["b", "c", "a"]
    for run in ranked:
        others = [o.analysis.forecast.final for o in ranked if o is not run]
        assert run.chance_to_beat == pytest.approx(run.analysis.forecast.prob_beyond(min(others)), rel=1e-9)
    assert 0.5 < ranked[0].chance_to_beat < 1.0  # c is close behind b: not a sure thing
    assert ranked[2].chance_to_beat < 0.01


def test_a_rising_score_is_ranked_highest_first_with_the_forecasts_own_chances():
    steps = np.arange(1, 301)
    forecasts = [Forecaster().fit(steps, top - 0.5 / np.sqrt(steps), horizon=1000, mode="max", bounds=(0, 1))
                 for top in (0.9, 0.95, 0.8)]  # fmt: skip
    endings = [FinalDistribution.of(f) for f in forecasts]
    assert ranking_order([f.final for f in forecasts], "max", ["a", "b", "c"]) == [1, 0, 2]
    chances = chances_to_end_best(endings, "max")
    for i, forecast in enumerate(forecasts):
        best_other = max(f.final for j, f in enumerate(forecasts) if j != i)
        assert chances[i] == pytest.approx(forecast.prob_beyond(best_other), rel=1e-9, abs=1e-15)
    assert chances[1] > 0.5 > chances[2]
    assert ranking_order([2.0, math.nan, 1.0, 1.0], "min", ["d", "a", "c", "b"]) == [3, 2, 0, 1]  # ties by name
    assert math.isnan(chances_to_end_best([endings[0], None], "max")[0])  # no other forecast to beat
    with pytest.raises(ValueError, match="Expected `mode` to be one of"):
        ranking_order([1.0], "lowest", ["a"])


def test_anomalies_of_the_monitor_join_its_curve_at_their_own_values():
    observed = [[0, 3.0], [100, 2.0], [200, 1.9]]
    anomalies = [
        {"step": 150, "series": "loss", "value": 15.99},  # stepped over by the sample: added at its value
        {"step": 150, "series": "grad_norm", "value": 40.0},  # another series: not the monitor's value
        {"step": 100, "series": "loss", "value": 2.5},  # a step the curve has: the curve's own point stays
        {"step": 170, "series": "loss", "value": None},
    ]
    assert with_anomalies(observed, anomalies, "loss") == [[0, 3.0], [100, 2.0], [150, 15.99], [200, 1.9]]
    assert with_anomalies(observed, anomalies, "val_loss") == observed


def test_the_anomalies_kept_for_the_tab_keep_their_values_across_a_resume():
    kept = RecentAnomalies()
    spike = Anomaly("spike", 150, "warning", "loss spiked", value=15.99)
    document = kept.add((spike, Anomaly("nonfinite", 160, "critical", "loss is nan", value=math.nan)))
    assert [(a["step"], a["value"]) for a in document["anomalies"]] == [(150, 15.99), (160, None)]
    restored = RecentAnomalies()
    restored.load_state_dict(kept.state_dict())
    assert restored.state_dict() == kept.state_dict()
    older = kept.state_dict()
    for entry in older["anomalies"]:
        del entry["value"]  # a state saved before anomalies kept their values
    restored.load_state_dict(older)
    assert [a["value"] for a in restored.state_dict()["anomalies"]] == [None, None]
    older["anomalies"][0]["value"] = "15.99"
    with pytest.raises(TypeError, match=r"Expected `RecentAnomalies.anomalies\[0\]`\['value'\] to be a number"):
        restored.load_state_dict(older)
