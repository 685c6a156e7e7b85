"""The live-run part of ``benchmarks/calibrate.py``'s corpus (``benchmarks/live_corpus.py``) and its baseline rows,
on a small cache written here (no training: ``train=False``)."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

live_corpus = pytest.importorskip("live_corpus")


def _write_run(cache: Path, name: str, group: str, columns: dict[str, dict[int, float]]) -> None:
    (cache / f"{name}.json").write_text(json.dumps({"spec": {"name": name, "group": group}}))
    steps = sorted({s for col in columns.values() for s in col})
    with (cache / f"{name}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *columns])
        for s in steps:
            w.writerow([s, *["" if s not in col else f"{col[s]:.7g}" for col in columns.values()]])


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    steps = np.arange(300)
    lr = {int(s): 1e-3 * (0.5 + 0.5 * math.cos(math.pi * s / 300)) for s in steps}
    loss = {int(s): 0.5 + 2.0 * (s + 10.0) ** -0.5 for s in steps}
    val = {int(s): 0.6 + 2.0 * (s + 10.0) ** -0.5 for s in range(25, 301, 25)}
    acc = {int(s): 0.9 - 0.5 * (s + 10.0) ** -0.5 for s in range(25, 301, 25)}
    _write_run(tmp_path, "char_lm-00", "char_lm", {"loss": loss, "lr": lr, "val_acc": acc, "val_loss": val})
    surrogate = {int(s): (-1.0) ** s * 0.5 for s in steps}  # the RL loss: a surrogate that goes negative
    reward = {int(s): 5.0 - 4.0 * math.exp(-s / 60) for s in steps}
    val_reward = {int(s): 5.0 - 4.0 * math.exp(-s / 60) for s in range(5, 301, 5)}
    columns = {"loss": surrogate, "lr": {int(s): 1e-2 for s in steps}, "val_reward": val_reward, "reward": reward}
    _write_run(tmp_path, "rl_reward-00", "rl_reward", columns)
    return tmp_path


def test_live_curves_sources_groups_and_schedule(cache: Path) -> None:
    runs = {r["id"]: r for r in live_corpus.load_live(cache, train=False)}
    assert set(runs) == {
        "live__char_lm-00_loss",
        "live__char_lm-00_val_loss",
        "live__char_lm-00_val_acc",
        "live__rl_reward-00_reward",
        "live__rl_reward-00_val_reward",
    }  # the RL runs' surrogate loss is left out
    for r in runs.values():
        assert r["group"] in {"live-char_lm", "live-rl_reward"}
        assert len(r["lrs"]) == r["horizon"] + 1  # the planned LR of every step 0..horizon
        assert r["horizon"] == int(r["steps"][-1])
        assert np.all(np.isfinite(r["lrs"]))
    assert runs["live__char_lm-00_loss"]["source"] == "live"
    assert runs["live__char_lm-00_val_loss"]["source"] == "live-val"
    assert runs["live__char_lm-00_loss"]["horizon"] == 299
    val = runs["live__char_lm-00_val_loss"]
    assert val["horizon"] == 300
    assert val["lrs"][-1] == pytest.approx(val["lrs"][-2])  # held past the last training step
    acc = runs["live__char_lm-00_val_acc"]
    assert (acc["mode"], acc["bounds"], acc["truth"]) == ("max", (0.0, 1.0), pytest.approx(acc["values"][-1]))
    rew = runs["live__rl_reward-00_reward"]
    assert (rew["mode"], rew["bounds"]) == ("max", None)
    assert rew["truth"] == pytest.approx(5.0 - 4.0 * math.exp(-299 / 60), rel=1e-3)  # a smoothed tail


def test_dense_truth_never_crosses_zero_for_a_positive_loss(tmp_path: Path) -> None:
    steps = np.arange(400)
    loss = {int(s): max(1e-3 * (1 - s / 390), 0.0) + 1e-9 for s in steps}  # a tail falling steeply to ~0
    _write_run(tmp_path, "converge_zero-00", "converge_zero", {"loss": loss, "lr": {int(s): 1e-3 for s in steps}})
    (run,) = live_corpus.load_live(tmp_path, train=False)
    assert run["truth"] > 0


def test_baseline_rows_are_cached_and_schedule_aware_ones_need_a_schedule() -> None:
    calibrate = pytest.importorskip("calibrate")
    t = np.arange(1.0, 201.0)
    run = {"id": "x", "steps": t, "values": 1.0 + t**-0.5, "horizon": 400, "mode": "min", "bounds": None}
    run["truth"] = 1.0 + 400**-0.5
    stored: dict = {}
    row = calibrate.baseline_row(dict(run, lrs=None), 0.5, 200, ("last", "tissue"), stored)
    assert row["tissue"] is None
    assert 0 < row["last"] < 0.1
    assert list(stored) == ["x|0.5|200|last"]
    row = calibrate.baseline_row(dict(run, lrs=np.full(401, 1e-3)), 0.5, 200, ("last", "tissue"), stored)
    assert set(stored) == {"x|0.5|200|last", "x|0.5|200|tissue"}
    assert row["tissue"] < 0.05
    stored["x|0.5|200|last"] = run["truth"]  # a cached forecast is used as it is
    assert calibrate.baseline_row(dict(run, lrs=None), 0.5, 200, ("last",), stored)["last"] == 0.0


def test_an_exact_forecast_without_spread_needs_no_scale() -> None:
    calibrate = pytest.importorskip("calibrate")
    assert calibrate._need({"dist": 0.0, "rest2": 0.0, "floor": 0.1}, 0.0) == 0.0
    assert calibrate._need({"dist": 0.1, "rest2": 0.0, "floor": 0.1}, 0.0) == math.inf


def test_the_interval_scales_are_solved_before_any_cap_and_the_cap_applies_after():
    # The scales must not depend on the cap calibration.py holds while calibrate.py runs: coverage for them counts
    # every forecast; the chosen cap then turns a too-wide one into a forecast not made, scored as the last value.
    calibrate = pytest.importorskip("calibrate")
    row = {"ok": True, "err": 0.1, "fallback_err": 0.5, "dist": 1.0, "rest2": 9.0, "floor": 0.0}  # log-scale 3
    assert calibrate.covered(row, 1.0, 1.0)
    capped = calibrate.rescaled(row, 1.0, 1.0, 2.0)
    assert (capped["ok"], capped["covered"], capped["err"]) == (False, False, 0.5)
    assert calibrate.rescaled(row, 1.0, 1.0, 4.0)["err"] == 0.1
