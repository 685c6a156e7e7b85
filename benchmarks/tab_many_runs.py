"""The curvecast tab's comparison of many runs: how long a real ``tensorboard`` takes to answer it, and a headless
Chromium to draw it, against the number of runs.

For each count of runs, a fresh log directory gets that many runs written through curvecast's own writer
(``TensorBoardReporter``, fed the reports of real fits of ``Forecaster`` to synthetic loss curves: a power law to its
own floor, 1% noise and one spike, three forecasts per run at 100, 200 and 300 of 1000 steps). A ``tensorboard`` over
it (its default loader: the Rust data server where its binary is installed, else ``--load_fast false``) is polled until
every run is served; then:

- ``/compare``: the ranking of every run with the ten best drawn (what the tab asks first), median of 5 requests;
- ``/compare`` with every run drawn, median of 3;
- the page: Chromium (``--remote-debugging-pipe``) opens the tab and the time from navigation to the comparison drawn
  (the page's ``cc-drawn`` mark, after its request) is read, median of 3 loads; then the time from a click on
  "draw all" to every run drawn.

    python benchmarks/tab_many_runs.py [--runs 10 100 300] [--loader default|python]

Needs Chromium (``chromium`` on the PATH) for the page's times; without it they are left out.

Measured on a shared 2-core CPU (TensorBoard 2.21, its Rust data server): with 10 / 100 / 300 runs, ``/compare``
answers in 97 / 92 / 169 ms (36 / 64 / 127 KB), every run drawn in 102 / 187 / 535 ms (up to 1.1 MB), and the page
shows the comparison 0.45 / 0.39 / 0.51 s after navigation; drawing all 300 runs takes 0.58 s. The Python loader
(``--loader python``): 29 / 61 / 108 ms, and 0.41 / 0.44 / 0.50 s for the page.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from pytorch_lightning.loggers import TensorBoardLogger

from curvecast.forecasting import Forecaster
from curvecast.forecasting.anomalies import Anomaly
from curvecast.forecasting.report import Report, target_chance
from curvecast.integrations import TensorBoardReporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the Chromium driver the page's tests use
from devtools_pipe import CHROMIUM, DevTools  # noqa: E402

HORIZON = 1000
FORECAST_AT = (100, 200, 300)
TARGET = 1.2
SPIKE = 150


def write_runs(root: Path, count: int, seed: int = 0) -> float:
    """``count`` runs under ``root``, each through a TensorBoardReporter; returns the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    for i in range(count):
        floor = 1.0 + 0.5 * rng.random()
        steps = np.arange(FORECAST_AT[-1] + 1, dtype=np.float64)
        values = (floor + 3.0 * (steps + 1) ** -0.5) * np.exp(rng.normal(0.0, 0.01, steps.size))
        values[SPIKE] *= 10.0
        logger = TensorBoardLogger(str(root), name=f"run_{i:04d}", version=0)
        trainer = SimpleNamespace(loggers=[logger], global_step=0)
        reporter = TensorBoardReporter()
        reporter.on_train_start(trainer, None)
        for at in FORECAST_AT:
            seen = steps <= at
            forecast = Forecaster().fit(steps[seen], values[seen], horizon=HORIZON)
            anomalies = (Anomaly("spike", SPIKE, "warning", "loss spiked", value=float(values[SPIKE])),)
            report = Report(
                step=at, monitor="loss", horizon=HORIZON, forecast=forecast, target=TARGET,
                target_chance=target_chance(forecast, TARGET), observed=float(values[at]),
                best=float(values[seen].min()), anomalies=anomalies if at > SPIKE else (),
                series={"loss": SimpleNamespace(steps=steps[seen], values=values[seen])}, is_last=at == FORECAST_AT[-1],
            )  # fmt: skip
            reporter.on_report(trainer, None, report)
        reporter.close()  # its writes, made on a thread of its own, are done before the file is closed
        logger.experiment.close()
    return time.perf_counter() - start


class TensorBoard:
    """A ``tensorboard`` process over ``logdir`` (the loader named), for a ``with`` block; ``url`` is its address."""

    def __init__(self, logdir: Path, loader: str) -> None:
        extra = (
            ["--load_fast", "false", "--reload_interval", "0", "--reload_task", "blocking"]
            if loader == "python"
            else []
        )
        self.command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                        "--port", "0", *extra]  # fmt: skip

    def __enter__(self) -> TensorBoard:
        self.process = subprocess.Popen(self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.url = ""
        for line in iter(self.process.stderr.readline, ""):
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            raise RuntimeError("tensorboard printed no address")
        threading.Thread(target=self.process.stderr.read, daemon=True).start()  # a full pipe would block it
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        body = response.read()
    return time.perf_counter() - start, body


def wait_loaded(url: str, count: int, timeout: float = 600) -> float:
    """Poll until every run's last forecast is served; the seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        rows = json.loads(get(f"{url}/data/plugin/curvecast/compare?run=")[1])["runs"]
        if len(rows) == count and all(r["step"] == FORECAST_AT[-1] for r in rows):
            return time.perf_counter() - start
        time.sleep(0.2)
    raise RuntimeError(f"tensorboard did not load {count} runs in {timeout} s")


_MARK = "(performance.getEntriesByName('cc-drawn').at(-1) || {startTime: 0}).startTime"


def page_times(browser: DevTools, url: str, count: int) -> tuple[float, float]:
    """Seconds from navigation to the comparison drawn (median of 3 loads), and from "draw all" to every run drawn.
    The page marks each drawing (``cc-drawn``); a mark's time counts from the navigation."""
    loads = []
    page = f"{url}/data/plugin_entry.html?name=curvecast&view=compare"
    for _ in range(3):
        browser.call("Page.navigate", {"url": "about:blank"}, session=True)
        browser.call("Page.navigate", {"url": page}, session=True)
        browser.until(f"document.querySelectorAll('tr.cc-rank-row').length === {count}")
        loads.append(browser.evaluate(f"{_MARK}") / 1000)
    start = browser.evaluate("(() => { const t = performance.now(); document.getElementById('cc-draw-all').click();"
                             " return t; })()")  # fmt: skip
    browser.until(f"{_MARK} > {start} && document.querySelectorAll('path.cc-cmp-observed').length === {count}")
    return statistics.median(loads), (browser.evaluate(_MARK) - start) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--loader", choices=("default", "python"), default="default")
    args = parser.parse_args()
    logging.getLogger("curvecast").setLevel(logging.ERROR)
    print(f"curvecast tab, runs compared (tensorboard loader: {args.loader}; Chromium: {'yes' if CHROMIUM else 'no'})")
    print(f"{'runs':>5}  {'write s':>7}  {'load s':>6}  {'compare ms':>10}  {'KB':>6}  {'all drawn ms':>12}  {'KB':>6}"
          f"  {'page s':>6}  {'draw all s':>10}")  # fmt: skip
    for count in args.runs:
        with tempfile.TemporaryDirectory(prefix="curvecast_tab_") as tmp:
            root = Path(tmp) / "logs"
            written = write_runs(root, count)
            with TensorBoard(root, args.loader) as tensorboard:
                loaded = wait_loaded(tensorboard.url, count)
                compare = f"{tensorboard.url}/data/plugin/curvecast/compare"
                first = [get(compare) for _ in range(5)]
                every = "?" + "&".join(f"run=run_{i:04d}/version_0" for i in range(count))
                drawn = [get(compare + every) for _ in range(3)]
                assert len(json.loads(drawn[0][1])["drawn"]) == count
                page, draw_all = (float("nan"), float("nan"))
                if CHROMIUM:
                    browser = DevTools(Path(tmp) / "profile", window="1600,1200")
                    try:
                        page, draw_all = page_times(browser, tensorboard.url, count)
                    finally:
                        browser.close()
            print(f"{count:>5}  {written:>7.1f}  {loaded:>6.1f}  {1000 * statistics.median(t for t, _ in first):>10.0f}"
                  f"  {len(first[0][1]) / 1024:>6.0f}  {1000 * statistics.median(t for t, _ in drawn):>12.0f}"
                  f"  {len(drawn[0][1]) / 1024:>6.0f}  {page:>6.2f}  {draw_all:>10.2f}")  # fmt: skip
    print(
        "compare: the ranking of every run, the best 10 drawn; all drawn: every run's curves; page: navigation to the "
        "comparison drawn (median of 3); draw all: a click on 'all' to every run drawn"
    )


if __name__ == "__main__":
    from results import recorded

    with recorded("tab_many_runs"):
        main()
