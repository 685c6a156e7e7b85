"""TensorBoard's curvecast tab, served by a real ``tensorboard`` process (each of its two loaders) over two real runs:
its routes over HTTP, and the page drawn by a headless Chromium (a screenshot lands in pytest's tmp dir; its path is
printed)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from curvecast import Curvecast
from curvecast.integrations import ForecastEarlyStopping, ForecastStopRule
from curvecast.tensorboard_plugin.summary import FORECAST_TAG, decode, json_summary, rounded
from run_helpers import read_events, tiny_trainer
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
def logdir(tmp_path_factory) -> Path:
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
    return root


# TensorBoard's two loaders: the Python one (read before the server answers) and the Rust data server that
# `tensorboard --logdir` uses by default where its binary is installed (it loads in the background).
LOADERS = {
    "python": ["--load_fast", "false", "--reload_task", "blocking", "--reload_interval", "0"],
    "rust": ["--load_fast", "true"],
}


@pytest.fixture(scope="module", params=sorted(LOADERS))
def server(request, logdir):
    """A ``tensorboard`` process over ``logdir``; the curvecast tab comes from the installed entry point."""
    if request.param == "rust" and _rust_server_binary() is None:
        pytest.skip("no binary of tensorboard-data-server for this platform: TensorBoard uses its Python loader")
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0",
               *LOADERS[request.param]]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url, seen = None, []
    for line in iter(process.stderr.readline, ""):
        seen.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        process.kill()
        pytest.fail("tensorboard printed no address:\n" + "".join(seen[-20:]))
    threading.Thread(target=process.stderr.read, daemon=True).start()  # drain it: a full pipe would block the server
    try:
        _wait_until_loaded(url, logdir)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _rust_server_binary() -> str | None:
    try:
        import tensorboard_data_server
    except ImportError:
        return None
    return tensorboard_data_server.server_binary()


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
    # No sub-run per forecast: besides the runs, only each run's hparams summary.
    assert sorted(_json(f"{server}/data/runs")) == sorted(
        [SHORT, STOPPED, f"{SHORT}/curvecast_summary", f"{STOPPED}/curvecast_summary"]
    )


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


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
               "--window-size=1280,1100", "--virtual-time-budget=20000", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): page not drawn")
def test_the_page_draws_the_run_in_a_browser(server, tmp_path):
    page = f"{server}/data/plugin_entry.html?" + urllib.parse.urlencode({"name": "curvecast", "run": STOPPED})
    dom = _chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    classes = set(re.findall(r'<path[^>]*class="([\w-]+)"', dom.stdout))
    classes |= set(re.findall(r'<(?:line|circle)[^>]*class="([\w-]+)"', dom.stdout))
    assert set(DRAWN) <= classes, sorted(classes)
    assert re.search(rf'<circle[^>]*class="cc-anomaly"[^>]*data-step="{SPIKE}"', dom.stdout)
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
