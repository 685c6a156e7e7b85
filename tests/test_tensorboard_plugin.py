"""TensorBoard's curvecast tab, served by a real ``tensorboard`` process (each of its two loaders) over two real runs:
its routes over HTTP (each run, and the runs compared: ranked by forecast with each run's chance to end best, from the
code ``curvecast analyze DIR`` uses), and the page drawn by a headless Chromium (screenshots of a run and of the
comparison land in pytest's tmp dir; their paths are printed)."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from curvecast import Curvecast
from curvecast.forecasting.ranking import FinalDistribution, chances_to_end_best
from curvecast.integrations import ForecastEarlyStopping, ForecastStopRule
from curvecast.tensorboard_plugin.summary import FORECAST_TAG, decode, json_summary, rounded
from run_helpers import TENSORBOARD_LOADERS, TensorBoardServer, read_events, rust_data_server, tiny_trainer
from tiny_models import CurveModule

STOPPED = "stopped/version_0"  # target 1.5 under a loss floor of 2.0: stopped early; an LR drop planned at 300
SHORT = "short/version_0"  # no target, 80 steps
HORIZON = 600
SPIKE = 150
LR_DROP = 300


def _fit(root: Path, name: str, bundle: Curvecast, module: CurveModule) -> pl.Trainer:
    """Fits ``module`` for its ``steps``, one epoch, into the TensorBoard run ``{name}/version_0`` under ``root``."""
    logger = TensorBoardLogger(str(root), name=name)
    trainer = tiny_trainer(root, [bundle], module.steps, logger=logger, max_epochs=1, log_every_n_steps=1)
    trainer.fit(module)
    return trainer


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, dict]:
    """The log directory of the two runs, and each run's last forecast (the one its latest document holds)."""
    root = tmp_path_factory.mktemp("tb_plugin")
    log = logging.getLogger("curvecast")
    level = log.level
    log.setLevel(logging.WARNING)  # quiet runs; restored below
    try:
        # No forecast-based stop before 30% of the run: the spike at step 150 comes first.
        stopper = ForecastEarlyStopping(ForecastStopRule(min_progress=0.3))
        stopped = Curvecast(target=1.5, early_stopping=stopper, forecast_every=20, background=False,
                            forecast_budget=None)  # fmt: skip
        trainer = _fit(root, "stopped", stopped, CurveModule(HORIZON, spike_at=SPIKE, lr_drop_at=LR_DROP))
        assert stopper.stop_request is not None
        assert SPIKE < trainer.global_step < HORIZON
        short = Curvecast(forecast_every=20, background=False, forecast_budget=None)
        _fit(root, "short", short, CurveModule(80))
    finally:
        log.setLevel(level)
    return root, {STOPPED: stopped.last_report.forecast, SHORT: short.last_report.forecast}


@pytest.fixture(scope="module")
def logdir(fitted) -> Path:
    return fitted[0]


@pytest.fixture(scope="module", params=sorted(TENSORBOARD_LOADERS))
def server(request, logdir):
    """A ``tensorboard`` process over ``logdir``; the curvecast tab comes from the installed entry point."""
    if request.param == "rust" and rust_data_server() is None:
        pytest.skip("no binary of tensorboard-data-server for this platform: TensorBoard uses its Python loader")
    with TensorBoardServer(logdir, request.param) as tensorboard:
        _wait_until_loaded(tensorboard.url, logdir)
        yield tensorboard.url


def _wait_until_loaded(url: str, logdir: Path) -> None:
    """Poll (bounded) until the server has both runs whole: their last observed step and the stop are served."""
    expected = {run: _scalars(logdir, run, "curvecast/loss")[-1].step for run in (SHORT, STOPPED)}
    served: dict = {}
    for _ in range(600):
        served = {}
        for run in expected:
            status, _, body = _get(f"{url}/data/plugin/curvecast/run?" + urllib.parse.urlencode({"run": run}))
            data = json.loads(body) if status == 200 else {}
            served[run] = (data.get("observed") or [[None]])[-1][0], bool(data.get("stops"))
        if served == {SHORT: (expected[SHORT], False), STOPPED: (expected[STOPPED], True)}:
            return
        time.sleep(0.05)  # the Rust loader reads in the background
    pytest.fail(f"tensorboard did not load the runs in 30 s: expected {expected}, served {served}")


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def _json(url: str):
    status, _, body = _get(url)
    assert status == 200, body
    return json.loads(body)


def _run(server: str, run: str) -> dict:
    return _json(f"{server}/data/plugin/curvecast/run?" + urllib.parse.urlencode({"run": run}))


def _scalars(logdir: Path, run: str, tag: str) -> list:
    return read_events(logdir / run).Scalars(tag)


def test_the_tab_is_listed_and_each_run_once(server):
    listing = _json(f"{server}/data/plugins_listing")["curvecast"]
    assert listing["enabled"] is True
    assert listing["tab_name"] == "Curvecast"
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/curvecast/index.js"}
    assert _json(f"{server}/data/plugin/curvecast/runs") == [SHORT, STOPPED]
    # No sub-run: TensorBoard's run selector lists each run once, and no Scalars chart repeats the tab.
    assert sorted(_json(f"{server}/data/runs")) == [SHORT, STOPPED]
    tags = _json(f"{server}/data/plugin/scalars/tags")
    assert not [t for run in tags.values() for t in run if t.startswith("curvecast/summary/")]


def test_a_run_serves_observed_forecast_band_and_target(server, logdir):
    data = _run(server, STOPPED)
    observed = _scalars(logdir, STOPPED, "curvecast/loss")
    assert data["monitor"] == "loss"
    assert data["observed"] == [[e.step, pytest.approx(e.value)] for e in observed]
    forecast = data["forecast"]
    assert forecast["horizon"] == HORIZON
    assert forecast["target"] == 1.5
    assert forecast["prob_target"] < 0.05  # the floor is 2.0: out of reach, which is why the run stopped
    assert forecast["last_step"] == observed[-1].step
    curve = forecast["curve"]
    assert curve["steps"][0] == forecast["last_step"]
    assert curve["steps"][-1] == HORIZON
    assert curve["steps"] == sorted(set(curve["steps"]))
    assert all(lo <= mean <= hi for lo, mean, hi in zip(curve["lo"], curve["mean"], curve["hi"], strict=True))
    assert curve["lo"][0] == curve["hi"][0]  # the band opens from the last observed step ...
    assert curve["lo"][-1] == pytest.approx(forecast["final_lo"], rel=1e-4)  # ... to the interval at the horizon
    assert curve["hi"][-1] == pytest.approx(forecast["final_hi"], rel=1e-4)
    assert 1.8 < forecast["final"] < 2.4


def test_a_run_serves_the_final_forecast_over_time(server, logdir):
    history = _run(server, STOPPED)["final_history"]
    written = _scalars(logdir, STOPPED, "curvecast/forecast/final")
    assert [p[0] for p in history["final"]] == [e.step for e in written]
    assert len(history["final"]) >= 10
    lo, hi = dict(map(tuple, history["final_lo"])), dict(map(tuple, history["final_hi"]))
    assert all(lo[step] <= value <= hi[step] for step, value in history["final"])


def test_a_run_serves_anomalies_stops_and_the_lr(server):
    data = _run(server, STOPPED)
    spikes = [a for a in data["anomalies"] if a["kind"] == "spike"]
    assert [a["step"] for a in spikes] == [SPIKE]
    assert "spiked" in spikes[0]["message"]
    spike = CurveModule(HORIZON, spike_at=SPIKE).value(SPIKE)  # ten times the curve: about 22
    assert spikes[0]["value"] == pytest.approx(spike, rel=1e-5)  # the anomaly at its own value ...
    assert [SPIKE, pytest.approx(spike, rel=1e-5)] in data["observed"]  # ... and in the observed curve
    stop = data["stops"][-1]
    assert stop["step"] == data["observed"][-1][0]
    assert stop["message"].startswith(f"Stopped at step {stop['step']} of {HORIZON}")
    lr = dict(map(tuple, data["lr"]))
    assert min(lr) == 0
    assert max(lr) == stop["step"]  # the LR so far, up to the last step
    assert all(value == pytest.approx(0.1 if step < LR_DROP else 0.01) for step, value in lr.items())
    planned = data["planned_lr"]
    assert planned["steps"][0] == 0
    assert planned["steps"][-1] >= HORIZON - 1
    assert planned["lrs"][0] == pytest.approx(0.1)
    assert planned["lrs"][-1] == pytest.approx(0.01)


def test_a_run_without_target_or_events(server):
    data = _run(server, SHORT)
    assert data["forecast"]["target"] is None
    assert data["forecast"]["prob_target"] is None
    assert data["anomalies"] == []
    assert data["stops"] == []
    assert data["observed"][-1][0] == 79


def test_bad_requests_and_the_page(server):
    status, _, body = _get(f"{server}/data/plugin/curvecast/run")
    assert (status, body) == (400, "Expected a `run` query argument, but got none")
    status, _, body = _get(f"{server}/data/plugin/curvecast/run?run=nope")
    assert status == 404
    assert "nope" in body
    status, kind, body = _get(f"{server}/data/plugin/curvecast/index.js")
    assert status == 200
    assert kind.startswith("application/javascript")
    assert "export async function render()" in body
    assert "http" not in body.replace("http://www.w3.org/2000/svg", "")  # no network beyond this TensorBoard
    status, _, body = _get(f"{server}/data/plugin_entry.html?name=curvecast")
    assert status == 200
    assert '"./index.js"' in body


def test_the_plugin_loads_without_torch_or_lightning():
    """TensorBoard imports every installed plugin at startup: this one must not pull torch into it."""
    code = (
        "import sys; from tensorboard import default\n"
        "plugins = [p for p in default.get_dynamic_plugins() if p.plugin_name == 'curvecast']\n"
        "heavy = [m for m in ('torch', 'lightning', 'pytorch_lightning') if m in sys.modules]\n"
        "print(len(plugins), heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split("\n")[-2] == "1 []"


def test_documents_round_trip_and_refuse_nan():
    summary = json_summary(FORECAST_TAG, {"final": 2.5, "curve": {"mean": rounded([1.0, float("nan"), 1 / 3])}})
    value = summary.value[0]
    assert value.metadata.plugin_data.plugin_name == "curvecast"
    assert decode(value.tensor.string_val[0]) == {"final": 2.5, "curve": {"mean": [1.0, None, 0.333333]}, "version": 1}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_summary(FORECAST_TAG, {"final": float("nan")})
    assert decode(b"not json") is None
    assert decode(b"[1, 2]") is None


# -- in a browser ---------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRAWN = ("cc-observed", "cc-forecast", "cc-band", "cc-target", "cc-anomaly", "cc-stop", "cc-final", "cc-lr",
         "cc-lr-planned")  # fmt: skip


def _chromium(tmp_path: Path, *args: str, width: int = 1280) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
               f"--window-size={width},1100", "--virtual-time-budget=20000", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): page not drawn")
def test_the_page_draws_the_run_in_a_browser(server, tmp_path):
    page = f"{server}/data/plugin_entry.html?" + urllib.parse.urlencode({"name": "curvecast", "run": STOPPED})
    dom = _chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    classes = set(re.findall(r'<path[^>]*class="([\w-]+)"', dom.stdout))
    classes |= set(re.findall(r'<(?:line|circle)[^>]*class="([\w-]+)"', dom.stdout))
    assert set(DRAWN) <= classes, sorted(classes)
    # One marker per step (its tooltip lists every anomaly of the step), the spike's at its own value.
    markers = re.findall(r'<circle[^>]*class="cc-anomaly"[^>]*data-step="(\d+)"[^>]*data-value="([^"]+)"', dom.stdout)
    steps = [int(step) for step, _ in markers]
    assert len(steps) == len(set(steps)) >= 1
    served = _run(server, STOPPED)["anomalies"]
    assert sorted(steps) == sorted({a["step"] for a in served})
    assert float(dict(markers)[str(SPIKE)]) == pytest.approx(
        CurveModule(HORIZON, spike_at=SPIKE).value(SPIKE), rel=1e-5
    )
    width = int(re.search(r'<svg[^>]*id="cc-main"[^>]*width="(\d+)"', dom.stdout).group(1))
    assert width > 1100  # the page's width (1280 less its margins), not a fixed one
    path = re.search(r'<path[^>]*class="cc-forecast"[^>]*d="([^"]+)"', dom.stdout) or re.search(
        r'<path[^>]*d="([^"]+)"[^>]*class="cc-forecast"', dom.stdout
    )
    assert path
    assert path.group(1).count("L") >= 10
    assert "Stopped at step" in dom.stdout  # the stop's message, as text

    screenshot = tmp_path / "curvecast_tab.png"
    shot = _chromium(tmp_path, f"--screenshot={screenshot}", page)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\ncurvecast tab screenshot: {screenshot}")


# -- the runs compared ----------------------------------------------------------------------------------------------


def _compare(server: str, *chosen: str) -> dict:
    query = "?" + urllib.parse.urlencode([("run", run) for run in chosen]) if chosen else ""
    return _json(f"{server}/data/plugin/curvecast/compare{query}")


def test_the_runs_are_ranked_with_the_chance_to_end_best_of_analyze(server, fitted):
    data = _compare(server)
    forecasts = fitted[1]
    order = sorted(forecasts, key=lambda run: forecasts[run].final)  # a loss: the lowest forecast first
    rows = data["runs"]
    assert [r["run"] for r in rows] == order
    assert [r["rank"] for r in rows] == [1, 2]
    assert data["mode"] == "min"
    assert data["horizons"] == [80, HORIZON]  # each run to its own horizon, and the page is told they differ
    # The chances are those of the code `curvecast analyze DIR` ranks with, from each run's own forecast.
    expected = chances_to_end_best([FinalDistribution.of(forecasts[run]) for run in order], "min")
    assert [r["chance_best"] for r in rows] == pytest.approx(expected, rel=1e-9)
    assert rows[0]["chance_best"] > 0.5 > rows[1]["chance_best"]
    for row in rows:
        forecast = forecasts[row["run"]]
        assert row["final"] == pytest.approx(forecast.final)
        assert (row["final_lo"], row["final_hi"]) == pytest.approx(forecast.interval(0.8))
        last = _scalars(fitted[0], row["run"], "curvecast/loss")[-1]
        assert (row["last_step"], row["last"]) == (last.step, pytest.approx(last.value, rel=1e-6))
    assert rows[order.index(STOPPED)]["target"] == 1.5


def test_the_chosen_runs_are_drawn_with_their_forecast_and_band(server, logdir):
    data = _compare(server)
    drawn = {d["run"]: d for d in data["drawn"]}
    assert sorted(drawn) == [SHORT, STOPPED]  # the best ten by default: both
    for run, d in drawn.items():
        observed = _scalars(logdir, run, "curvecast/loss")
        assert [p[0] for p in d["observed"]] == [e.step for e in observed]
        curve = d["curve"]
        assert curve["steps"][0] == observed[-1].step
        assert curve["steps"][-1] == d["horizon"]
        assert all(lo <= m <= hi for lo, m, hi in zip(curve["lo"], curve["mean"], curve["hi"], strict=True))
    assert drawn[STOPPED]["target"] == 1.5
    assert [SPIKE, pytest.approx(CurveModule(HORIZON, spike_at=SPIKE).value(SPIKE), rel=1e-5)] in drawn[STOPPED][
        "observed"
    ]

    short = _compare(server, SHORT)
    assert [d["run"] for d in short["drawn"]] == [SHORT]
    assert [r["run"] for r in short["runs"]] == [r["run"] for r in data["runs"]]  # the ranking still has every run
    assert _compare(server, "")["drawn"] == []


def test_the_chance_to_end_best_is_the_forecasts_own(fitted):
    """A run's ending read back from its document (final, log_scale, mode, base) answers as its Forecast does."""
    for forecast in fitted[1].values():
        ending = FinalDistribution.of(forecast)
        for value in np.linspace(forecast.final * 0.8, forecast.final * 1.2, 41):
            assert ending.prob_beyond(value) == pytest.approx(forecast.prob_beyond(value), rel=1e-9, abs=1e-15)
    assert math.isnan(FinalDistribution(2.0, 0.1).prob_beyond(math.nan))
    with pytest.raises(ValueError, match="Expected `mode` to be one of"):
        FinalDistribution(2.0, 0.1, mode="best")


def _attributes(dom: str, tag: str, cls: str) -> list[dict[str, str]]:
    """The attributes of each ``tag`` element of class ``cls`` in a dumped DOM."""
    found = []
    for match in re.finditer(rf"<{tag}\b([^>]*)>", dom):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
        if cls in attributes.get("class", "").split():
            found.append(attributes)
    return found


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): page not drawn")
def test_the_page_compares_the_runs_in_a_browser(server, tmp_path):
    ranking = [r["run"] for r in _compare(server)["runs"]]
    page = f"{server}/data/plugin_entry.html?" + urllib.parse.urlencode({"name": "curvecast"})  # two runs: compared
    dom = _chromium(tmp_path, "--dump-dom", page, width=1600)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="cc-compare"' in dom.stdout
    assert [row["data-run"] for row in _attributes(dom.stdout, "tr", "cc-rank-row")] == ranking
    assert "chance to end best" in dom.stdout
    chances = re.findall(r'<td class="cc-chance">([^<]*)</td>', dom.stdout)
    assert len(chances) == 2
    assert all(re.fullmatch(r"(<|>)?\d+%|&lt;1%|&gt;99%", c) for c in chances), chances
    for cls in ("cc-cmp-observed", "cc-cmp-forecast", "cc-cmp-band"):
        assert sorted(a["data-run"] for a in _attributes(dom.stdout, "path", cls)) == sorted(ranking), cls
    colors = {a["data-run"]: a["stroke"] for a in _attributes(dom.stdout, "path", "cc-cmp-observed")}
    assert len(set(colors.values())) == 2  # a colour per run ...
    forecast_colors = {a["data-run"]: a["stroke"] for a in _attributes(dom.stdout, "path", "cc-cmp-forecast")}
    assert forecast_colors == colors  # ... its forecast in the same one
    assert len(_attributes(dom.stdout, "line", "cc-target")) == 1  # STOPPED's target; SHORT has none
    chart = re.search(r'<svg[^>]*id="cc-compare-chart"[^>]*>', dom.stdout).group(0)
    assert int(re.search(r'width="(\d+)"', chart).group(1)) > 1500  # the page's width
    assert 'data-scale="linear"' in chart

    logged = _chromium(tmp_path, "--dump-dom", page + "&log=1", width=1600)
    chart = re.search(r'<svg[^>]*id="cc-compare-chart"[^>]*>', logged.stdout).group(0)
    assert 'data-scale="log"' in chart
    assert re.search(r'<input[^>]*id="cc-log"', logged.stdout)

    for name, url in (("curvecast_compare.png", page), ("curvecast_compare_log.png", page + "&log=1")):
        screenshot = tmp_path / name
        shot = _chromium(tmp_path, f"--screenshot={screenshot}", url, width=1600)
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"\ncurvecast comparison screenshot: {screenshot}")
