"""False alarms on healthy runs, and catches of injected events, of the detectors a live run uses.

    python benchmarks/false_alarms.py [--cache DIR] [--wild DIR] [--runs N] [--no-train] [--cv]

Three parts, each printed as a table:

1. **Healthy live runs** (``benchmarks/live_runs.py``; trained first when the cache lacks them, unless
   ``--no-train``): per workload, the false critical alerts, false stops, and warning-level spike/divergence alerts
   (per run and per 10,000 steps), twice: as **recorded** live (by the detector version the record names) and
   **replayed** now: the saved curves fed, step by step, to a :class:`~curvecast.live.stability_watch.StabilityWatch`
   configured as the bundle configures it (monitor, mode, the run's LR schedule), the stop emulated as the stop rule
   decides it on anomalies (a critical divergence of the monitor, a non-finite loss or monitor). Forecast-based stops
   (no improvement expected, target out of reach) are not the detectors': they are listed from the records.
   Every run is healthy by construction, so every critical alert, every stop and every warning-level divergence
   alarm counts as false, and so does every warning-level spike alarm that is no real spike in hindsight (at least 4
   robust noise units and 5% above the median of its 10 neighbours on each side: the median judge of
   ``benchmarks/anomaly_detection.py``, with the smallest spike that matters).
2. **Wild logs** (``../shared/data/wild``: 80 real Lightning ``CSVLogger`` logs): each loss-like column (mode "min")
   and accuracy-like column (mode "max", told by its name: acc, f1, auc, reward, iou, ...) replayed as the live watch
   would: a training loss through the watch's loss path (``InstabilityMonitor``), any other column as the watch's
   monitored series. False critical alerts and warning-level spike/divergence alarms per 10,000 points, by kind of
   column. Logs listed in ``EXCLUDED`` (they diverged) are left out, with the reason.
3. **Injected events** on dense curves (the live runs' per-step training losses, RL surrogates left out) and sparse
   ones (8-50 points: wild epoch-level loss columns and the live runs' validation losses), through the same paths:
   single-step spikes of 8-80 noise units (robust log noise of the curve) that are also at least 5% of the loss,
   caught within 2 points; relative spikes (x1.1 to x3) by their size in noise units; divergences (the trend replaced
   by a climb of 1% a point on dense curves, 5% a point on sparse ones, from 50-80% of the curve), caught before the
   loss rose 20%; one NaN per curve, caught at its step.

``--cv`` then fits each new threshold by leaving one group out (a live workload, the wild losses or scores, the
labelled curves of ``benchmarks/anomaly_detection.py`` by source) and prints the held-out figures (about 12 minutes).

The targets: 0 false critical alerts and 0 false stops on healthy runs and wild logs; at most 0.5
false spike/divergence alarms per 10,000 steps (dense) and per 10,000 points (sparse); at least 95% of the eligible
injected spikes caught within 2 points; every injected divergence caught before +20%; every NaN at its step.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from curvecast.forecasting.anomalies import Anomaly  # noqa: E402 - after the path fix, so the script runs anywhere
from curvecast.live.stability_watch import StabilityWatch  # noqa: E402
from curvecast.series import GRAD_NORM, LR, SAMPLES_PER_SEC, TRAIN_LOSS  # noqa: E402

SEED = 0
DEFAULT_WILD = REPO.parent / "shared" / "data" / "wild"
DEFAULT_CURVES = REPO.parent / "shared" / "data" / "curves"
DEFAULT_CACHE = Path("/tmp/curvecast_live_runs")
FALSE_KINDS = ("spike", "divergence")  # the alarm kinds whose false rate the targets bound
LOUD = ("warning", "critical")  # severities a user is alerted by (info is a note in the log)
EARLY_STEPS = 20  # "a divergence alert in the first 20 steps": the false alarm this counts
# Wild logs left out as not healthy (looked at one by one; every other log is taken as a healthy run).
EXCLUDED = {
    "060": "its train_loss blew up from 0.003 to 500 near step 300, then took the rest of the run to come back down",
    "092": "its val_loss_step jumped from 0.35 to 2.8 and stayed flat to the end: the model collapsed",
    "217": "its val_loss and val_mae more than doubled (0.33 -> 0.75), rising to the end; the train loss never fell",
}

# --- replaying a series through the live watch --------------------------------------------------------------------


@dataclass
class Replay:
    """What the watch reported on one replayed run or column, and the stop the stop rule would have made."""

    anomalies: list[Anomaly]
    stop: tuple[str, int] | None  # (reason, step)


def replay_run(curves: dict[str, list[tuple[int, float]]], monitor: str | None, mode: str) -> Replay:
    """Feed a live run's saved series to a watch configured as the bundle configures it, in step order."""
    monitor = monitor or TRAIN_LOSS
    watch = StabilityWatch(monitor, mode, pair_grad_norm=GRAD_NORM in curves)
    lrs = curves.get(LR)
    if lrs:
        steps, values = zip(*lrs, strict=True)
        watch.set_schedule(np.interp(np.arange(steps[-1] + 1), steps, values).tolist())
    names = [TRAIN_LOSS, GRAD_NORM, SAMPLES_PER_SEC.removeprefix("throughput/")]
    names += [n for n in curves if n not in names and n != LR and (n.startswith("val") or n == monitor)]
    events = sorted(
        (step, order, name, value)
        for order, name in enumerate(names)
        for step, value in curves.get(name, ())
    )  # fmt: skip
    found: list[Anomaly] = []
    for step, _order, name, value in events:
        watch.feed(SAMPLES_PER_SEC if name == "samples_per_sec" else name, step, value)
        found += watch.collect()
    return Replay(found, emulated_stop(found, monitor))


def emulated_stop(anomalies: Iterable[Anomaly], monitor: str) -> tuple[str, int] | None:
    """The anomaly-based stop of ``ForecastStopRule``: a confirmed divergence of the monitor, a non-finite value."""
    for a in anomalies:
        if a.severity != "critical":
            continue
        if a.kind == "nonfinite" and a.series in (monitor, TRAIN_LOSS):
            return "non_finite", a.step
        if a.kind == "divergence" and a.series == monitor:
            return "divergence", a.step
    return None


def replay_series(
    name: str, steps: Iterable[int], values: Iterable[float], mode: str, as_loss: bool, monitor: str | None = None
) -> list[Anomaly]:
    """One column through the watch: the training-loss path (``as_loss``; ``monitor``: a score the run is watched
    by, mode "max") or the monitored-series path (``name`` is the monitor, with ``mode``)."""
    if as_loss:
        watch = StabilityWatch(monitor or TRAIN_LOSS, "max" if monitor else "min", pair_grad_norm=False)
    else:
        watch = StabilityWatch(name, mode, pair_grad_norm=False)
    series = TRAIN_LOSS if as_loss else name
    for s, v in zip(steps, values, strict=True):
        watch.feed(series, int(s), float(v))
    return watch.collect()


def loud(anomalies: Iterable[Anomaly], kinds: tuple[str, ...] = FALSE_KINDS) -> list[Anomaly]:
    return [a for a in anomalies if a.kind in kinds and a.severity in LOUD]


# --- judging a spike alarm in hindsight ---------------------------------------------------------------------------

REAL_SPIKE_Z = 4.0  # the median judge of benchmarks/anomaly_detection.py: >= 4 robust sd above its +-10 neighbours
REAL_SPIKE_RISE = 0.05  # ... and >= 5% above their median: the smallest spike worth catching
# A positive value a million times its neighbours' median is a spike, whatever the spread of differences says: where
# spikes are a third of a short series' points (a VAE's NLL at 1e7-1e14 among values near 140) that spread is as
# large as the spikes themselves.
REAL_SPIKE_FACTOR = 1e6


def real_spike_steps(points: list[tuple[int, float]]) -> set[int]:
    """The steps whose value is, in hindsight, a real one-point spike: ``REAL_SPIKE_Z`` robust noise units (1.4826
    MAD of the differences within 50 points, / sqrt 2) and ``REAL_SPIKE_RISE`` above the median of its 10 neighbours
    on each side, or ``REAL_SPIKE_FACTOR`` times that median; on the log scale when every value is positive, else on
    the raw scale."""
    steps = np.array([s for s, _ in points])
    v = np.array([x for _, x in points], dtype=float)
    ok = np.isfinite(v)
    steps, v = steps[ok], v[ok]
    log = bool(np.all(v > 0))
    y = np.log(v) if log else v
    d = np.diff(y)
    out = set()
    for i in range(len(y)):
        nb = np.r_[y[max(0, i - 10) : i], y[i + 1 : i + 11]]
        dd = d[max(0, i - 50) : i + 50]
        if len(nb) < 2 or len(dd) < 2:
            continue
        centre = float(np.median(nb))
        scale = 1.0 if log else max(abs(centre), 1e-12)
        sigma = max(1.4826 * float(np.median(np.abs(dd - np.median(dd)))) / math.sqrt(2), 1e-3 * scale)
        rise = y[i] - centre
        least = math.log1p(REAL_SPIKE_RISE) if log else REAL_SPIKE_RISE * scale
        clear = rise >= REAL_SPIKE_Z * sigma and rise >= least
        if clear or (log and rise >= math.log(REAL_SPIKE_FACTOR)):
            out.add(int(steps[i]))
    return out


class Judge:
    """Which alarms on a healthy series are false: every critical alert, every warning-level divergence alarm, and
    every warning-level spike alarm that is no real spike in hindsight (``real_spike_steps``; a spike of a score,
    mode "max", is a fall)."""

    def __init__(self, curves: dict[str, list[tuple[int, float]]], scores: Iterable[str] = ()) -> None:
        self.curves, self.scores = curves, set(scores)
        self._real: dict[str, set[int]] = {}

    def real(self, series: str, step: int) -> bool:
        if series not in self._real:
            name = "samples_per_sec" if series == SAMPLES_PER_SEC else series
            points = self.curves.get(name, [])
            if series in self.scores:  # a fall of a score is its spike: judge 1 / value (or minus it, at or below 0)
                flip = all(v > 0 for _, v in points)
                points = [(s, 1.0 / v if flip else -v) for s, v in points]
            self._real[series] = real_spike_steps(points)
        return step in self._real[series]

    def false_alarm(self, a: dict[str, Any]) -> bool:
        if a["kind"] not in FALSE_KINDS or a["severity"] not in LOUD:
            return False
        return a["kind"] != "spike" or not self.real(a["series"], a["step"])


# --- part 1: the healthy live runs --------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts over a group of runs."""

    runs: int = 0
    steps: int = 0
    critical: int = 0
    stops: int = 0
    loud: int = 0  # warning-level (or worse) spike and divergence alarms, all of them
    false: int = 0  # ... those that are false (see Judge)
    runs_false: int = 0
    early_divergence_runs: int = 0  # runs with a divergence alarm (any severity) in the first EARLY_STEPS steps
    info_spikes: int = 0
    risk: int = 0  # instability_risk warnings
    slowdown: int = 0
    by_series: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, steps: int, anomalies: list[dict[str, Any]], stopped: bool, judge: Judge) -> None:
        self.runs += 1
        self.steps += steps
        self.critical += sum(a["severity"] == "critical" for a in anomalies)
        self.stops += stopped
        self.loud += sum(a["kind"] in FALSE_KINDS and a["severity"] in LOUD for a in anomalies)
        false = [a for a in anomalies if judge.false_alarm(a)]
        self.false += len(false)
        self.runs_false += bool(false)
        for a in false:
            self.by_series[f"{a['series']}/{a['kind']}"] += 1
        self.early_divergence_runs += any(a["kind"] == "divergence" and a["step"] < EARLY_STEPS for a in anomalies)
        self.info_spikes += sum(a["kind"] == "spike" and a["severity"] == "info" for a in anomalies)
        self.risk += sum(a["kind"] == "instability_risk" for a in anomalies)
        self.slowdown += sum(a["kind"] == "slowdown" for a in anomalies)

    def row(self, name: str) -> str:
        per10k = 1e4 * self.false / max(self.steps, 1)
        return (
            f"{name:19s} {self.runs:4d} {self.steps:6d} | {self.critical:4d} {self.stops:5d} | {self.false:5d} "
            f"{self.false / max(self.runs, 1):6.2f} {per10k:7.1f} {self.runs_false:4d} {self.loud:5d} | "
            f"{self.early_divergence_runs:5d} {self.info_spikes:5d} {self.risk:5d} {self.slowdown:5d}"
        )


def as_dicts(anomalies: Iterable[Anomaly]) -> list[dict[str, Any]]:
    return [{"kind": a.kind, "severity": a.severity, "step": a.step, "series": a.series} for a in anomalies]


def live_part(records: list[dict[str, Any]]) -> None:
    versions = sorted({r.get("detector_version", "?") for r in records})
    print(f"\n## 1. Healthy live runs: {len(records)} runs (recorded by detector version {', '.join(versions)})")
    print("All runs are healthy: every critical alert and every stop is false; 'false' = warning-level divergence")
    print("alarms and warning-level spike alarms that are no real spike in hindsight (>= 4 sd and 5% above the median")
    print("of +-10 neighbours); 'loud' = all warning-level spike/divergence alarms; 'early' = runs with a divergence")
    print(f"alarm (any severity) in their first {EARLY_STEPS} steps; info = info spikes; risk = instability_risk.")
    header = (
        f"{'group':19s} {'runs':>4s} {'steps':>6s} | {'crit':>4s} {'stops':>5s} | {'false':>5s} {'/run':>6s} "
        f"{'/10k st':>7s} {'runs':>4s} {'loud':>5s} | {'early':>5s} {'info':>5s} {'risk':>5s} {'slow':>5s}"
    )
    tallies: dict[str, dict[str, Tally]] = {"recorded live": defaultdict(Tally), "replayed now": defaultdict(Tally)}
    other_stops: list[str] = []
    for r in records:
        spec, steps = r["spec"], r["steps_trained"]
        live_stop = r["stop"] is not None and r["stop"]["reason"] in ("divergence", "non_finite")
        if r["stop"] is not None and not live_stop:
            other_stops.append(f"{spec['name']} ({r['stop']['reason']} at step {r['stop']['step']})")
        replay = replay_run(r["curves"], spec["monitor"], spec["mode"])
        judge = Judge(r["curves"], scores=[spec["monitor"]] if spec["mode"] == "max" else [])
        for label, anomalies, stopped in (
            ("recorded live", r["anomalies"], live_stop),
            ("replayed now", as_dicts(replay.anomalies), replay.stop is not None),
        ):
            for key in (spec["group"], "all"):
                tallies[label][key].add(steps, anomalies, stopped, judge)
    for label, by_group in tallies.items():
        print(f"\n{label}:")
        print(header)
        for name in sorted(by_group, key=lambda g: (g == "all", g)):
            print(by_group[name].row(name))
        worst = sorted(by_group["all"].by_series.items(), key=lambda kv: -kv[1])
        print("  false alarms by series/kind: " + ", ".join(f"{k} {v}" for k, v in worst))
    if other_stops:
        print(f"forecast-based stops (recorded live, not the detectors'): {len(other_stops)}: {'; '.join(other_stops)}")


# --- part 2: the wild logs --------------------------------------------------------------------------------------------

# Column names: which are losses (lower is better), which are scores (higher is better), which are neither.
_MAX_WORDS = re.compile(r"acc|f1|auc|roc|reward|return|iou|precision|prec_|recall|map\b|bleu|score|r2|mcc")
_MIN_WORDS = re.compile(r"loss|mse|mae|rmse|mape|smape|nll|kl|perplexity|error")
_SKIP = re.compile(r"^(epoch|step|lr|lr-.*|lr_scheduler|epsilon|.*time.*|.*latency.*|iter_to_target|train_stage)$")


def column_mode(name: str) -> str | None:
    """"min" for a loss-like column, "max" for an accuracy-like one, None for anything else (epoch, lr, ...)."""
    low = name.lower()
    if _SKIP.match(low):
        return None
    if _MAX_WORDS.search(low):
        return "max"
    if _MIN_WORDS.search(low):
        return "min"
    return None


def is_training_loss(name: str) -> bool:
    """A training loss the live watch would take as the loss of every step (not a validation or test metric)."""
    low = name.lower()
    return _MIN_WORDS.search(low) is not None and not re.search(r"val|test|valid", low) and "epoch" not in low


@dataclass
class Column:
    log: str
    name: str
    mode: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def per_step(self) -> bool:
        """Logged by step (the ``*_step`` columns, or a training loss at Lightning's logging cadence)."""
        return self.name.endswith("_step") or (is_training_loss(self.name) and len(self.steps) > 50)


def read_wild(wild: Path) -> list[Column]:
    """Every loss-like and accuracy-like column of every log, in file order, finite and non-finite values alike."""
    out = []
    for path in sorted(wild.glob("*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for name in rows[0] if rows else ():
            mode = column_mode(name)
            if mode is None or path.stem in EXCLUDED:
                continue
            pts = [(int(float(r["step"])), float(r[name])) for r in rows if r.get(name) not in (None, "")]
            if len(pts) >= 3:
                steps, values = (np.array(c) for c in zip(*pts, strict=True))
                out.append(Column(path.stem, name, mode, steps, values))
    return out


def replay_column(col: Column, columns: list[Column]) -> list[Anomaly]:
    """A column through the watch as its run would have been watched: a training loss on the loss path (with the
    log's reward as the monitor, mode "max", when it logs one), any other column as the monitor, beside the log's
    training loss (the watch reads both, as it does live); only the column's own events are returned."""
    if not is_training_loss(col.name):
        losses = [c for c in columns if c.log == col.log and is_training_loss(c.name)]
        beside = max(losses, key=lambda c: len(c.values), default=None)
        watch = StabilityWatch(col.name, col.mode, pair_grad_norm=False)
        feeds = [(int(s), 1, col.name, float(v)) for s, v in zip(col.steps, col.values, strict=True)]
        if beside is not None:
            feeds += [(int(s), 0, TRAIN_LOSS, float(v)) for s, v in zip(beside.steps, beside.values, strict=True)]
        for step, _, name, value in sorted(feeds):
            watch.feed(name, step, value)
        return [a for a in watch.collect() if a.series == col.name]
    reward = next((c.name for c in columns if c.log == col.log and _REWARD.search(c.name.lower())), None)
    return replay_series(TRAIN_LOSS, col.steps, col.values, "min", as_loss=True, monitor=reward)


_REWARD = re.compile(r"reward|return")


def wild_part(wild: Path) -> None:
    columns = read_wild(wild)
    logs = len({c.log for c in columns})
    print(f"\n## 2. Wild logs: {len(columns)} columns of {logs} logs in {wild}")
    for log, reason in EXCLUDED.items():
        print(f"  excluded {log}: {reason}")
    print("per 10k points. crit = critical alerts (all false); false = warning-level divergence alarms and spike")
    print("alarms that are no real spike in hindsight; loud = all warning-level spike/divergence alarms. A training")
    print("loss goes through the watch's loss path (monitor: the log's reward with mode='max' when it logs one, as an")
    print("RL user would), any other column through the monitored path, as the monitor.")
    print(f"{'kind of column':34s} {'cols':>4s} {'points':>6s} | {'crit':>4s} {'false':>5s} {'/10k pts':>8s} "
          f"{'loud':>5s} | {'info':>4s} {'risk':>4s}")  # fmt: skip
    groups: dict[str, list[tuple[Column, list[Anomaly]]]] = defaultdict(list)
    for col in columns:
        path = "loss path" if is_training_loss(col.name) else f"monitored, mode={col.mode}"
        groups[f"{path}, {'per step' if col.per_step else 'per epoch'}"].append((col, replay_column(col, columns)))
    flagged: list[str] = []
    totals = np.zeros(7, dtype=int)
    for name in sorted(groups):
        row = np.zeros(7, dtype=int)
        for col, found in groups[name]:
            points = list(zip(col.steps.tolist(), col.values.tolist(), strict=True))
            judge = Judge({TRAIN_LOSS if is_training_loss(col.name) else col.name: points},
                          scores=[col.name] if col.mode == "max" else [])  # fmt: skip
            events = as_dicts(found)
            false = [a for a in events if judge.false_alarm(a)]
            row += [
                1, len(col.values), sum(a["severity"] == "critical" for a in events), len(false),
                sum(a["kind"] in FALSE_KINDS and a["severity"] in LOUD for a in events),
                sum(a["kind"] == "spike" and a["severity"] == "info" for a in events),
                sum(a["kind"] == "instability_risk" for a in events),
            ]  # fmt: skip
            flagged += [f"{col.log}:{col.name}@{a['step']} {a['kind']}/{a['severity']}" for a in events
                        if a["severity"] == "critical" or a in false]  # fmt: skip
        totals += row
        print(_wild_row(name, row))
    print(_wild_row("all", totals))
    if flagged:
        print("  false: " + "; ".join(flagged))


def _wild_row(name: str, row: np.ndarray) -> str:
    n, pts, crit, false, loud_, info, risk = (int(x) for x in row)
    rate = 1e4 * false / pts
    return f"{name:34s} {n:4d} {pts:6d} | {crit:4d} {false:5d} {rate:8.1f} {loud_:5d} | {info:4d} {risk:4d}"


# --- part 3: injected events ----------------------------------------------------------------------------------------


@dataclass
class Curve:
    """A healthy loss curve to inject into, and the watch path its kind of series takes."""

    source: str
    steps: np.ndarray
    values: np.ndarray
    as_loss: bool  # the training-loss path (else the monitored path, mode "min")

    def alarms(self, values: np.ndarray) -> list[tuple[int, str, str]]:
        """(index, kind, severity) of every event the watch reports on ``values`` at these steps."""
        index = {int(s): i for i, s in enumerate(self.steps)}
        found = replay_series("val_loss", self.steps, values, "min", as_loss=self.as_loss)
        return [(index[a.step], a.kind, a.severity) for a in found if a.step in index]


def robust_sigma(values: np.ndarray) -> float:
    """Per-point noise of the log curve: 1.4826 MAD of first differences / sqrt 2 (the benchmark's yardstick)."""
    d = np.diff(np.log(values[len(values) // 10 :]))
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def dense_curves(records: list[dict[str, Any]]) -> list[Curve]:
    out = []
    for r in records:
        pts = r["curves"].get(TRAIN_LOSS, [])
        if r["spec"]["group"] == "rl_reward" or len(pts) < 100:
            continue  # the RL "loss" is a policy-gradient surrogate: no loss to inject into
        steps, values = (np.array(c) for c in zip(*pts, strict=True))
        if np.all(values > 0) and np.all(np.isfinite(values)):
            out.append(Curve(r["spec"]["name"], steps, values, as_loss=True))
    return out


def sparse_curves(records: list[dict[str, Any]], wild: Path) -> list[Curve]:
    out = []
    for r in records:
        pts = r["curves"].get("val_loss", [])
        if 8 <= len(pts) <= 50:
            steps, values = (np.array(c) for c in zip(*pts, strict=True))
            if np.all(values > 0):
                out.append(Curve(f"live:{r['spec']['name']}", steps, values, as_loss=False))
    for col in read_wild(wild) if wild.is_dir() else []:
        if col.mode != "min" or col.per_step or not 8 <= len(col.values) <= 50:
            continue
        if np.all(col.values > 0) and np.all(np.isfinite(col.values)) and np.all(np.diff(col.steps) > 0):
            out.append(Curve(f"wild:{col.log}:{col.name}", col.steps, col.values, as_loss=is_training_loss(col.name)))
    return out


SPIKE_SIZES = np.geomspace(8, 80, 7)  # noise units
RELATIVE_SPIKES = (1.1, 1.25, 1.5, 2.0, 3.0)
MIN_SPIKE_RISE = 0.05  # an eligible spike is also at least 5% of the loss


def spike_positions(n: int, sparse: bool, rng: np.random.Generator) -> list[int]:
    """Where single spikes go: after the first tenth, away from the last 3 points; dense curves take several,
    at least 25 points apart, in one replay; a sparse curve one per replay, at each of a few positions."""
    first = max(int(0.1 * n), 3 if sparse else 20)
    if sparse:
        return sorted(set(np.linspace(first, n - 3, min(4, n - 2 - first)).astype(int).tolist()))
    at, i = [], first + int(rng.integers(0, 25))
    while i < n - 3:
        at.append(i)
        i += 25 + int(rng.integers(0, 25))
    return at


def inject_spikes(curves: list[Curve], sparse: bool, rng: np.random.Generator) -> dict[str, Any]:
    """Noise-scaled spikes (eligible ones: also >= 5% of the loss) and relative ones; caught = any spike or
    divergence alarm at the point or the next two."""
    hits, total = np.zeros(len(SPIKE_SIZES)), np.zeros(len(SPIKE_SIZES))
    rel_hits, rel_total = defaultdict(int), defaultdict(int)  # by (factor, size band)
    for c in curves:
        sig = max(robust_sigma(c.values), 1e-4)
        at = spike_positions(len(c.values), sparse, rng)
        groups = [[a] for a in at] if sparse else [at]
        for group in groups:
            k = rng.integers(0, len(SPIKE_SIZES), len(group))
            factors = np.exp(SPIKE_SIZES[k] * sig)
            caught = _caught(c, group, factors)
            for kk, f, got in zip(k, factors, caught, strict=True):
                if f - 1.0 >= MIN_SPIKE_RISE:
                    total[kk] += 1
                    hits[kk] += got
            rel = np.array(RELATIVE_SPIKES)[rng.integers(0, len(RELATIVE_SPIKES), len(group))]
            for f, got in zip(rel, _caught(c, group, rel), strict=True):
                band = _size_band(math.log(f) / sig)
                rel_total[(float(f), band)] += 1
                rel_hits[(float(f), band)] += got
    return {"hits": hits, "total": total, "rel_hits": rel_hits, "rel_total": rel_total}


def _caught(c: Curve, at: list[int], factors: np.ndarray) -> list[bool]:
    v = c.values.copy()
    v[at] *= factors
    flagged = {i for i, kind, _ in c.alarms(v) if kind in FALSE_KINDS}
    return [any(a + d in flagged for d in range(3)) for a in at]


def _size_band(units: float) -> str:
    return "<8 sd" if units < 8 else "8-80 sd" if units <= 80 else ">80 sd"


CONVERGED_GIVE_BACK = 0.005  # a curve is converged where +20% gives back less than this of the progress it made
NOISE_BANDS = (0.03, 0.10)  # per-point log noise: smooth < 3% <= noisy < 10% <= very noisy


@dataclass
class Climb:
    """One injected divergence: points from its onset to the first divergence alarm (None: never), the curve's noise,
    and whether the curve had converged (a rise of 20% there undoes less than ``CONVERGED_GIVE_BACK`` of its progress:
    2.0 -> 0.001 territory, where a 2.4-fold wobble is no divergence)."""

    delay: int | None
    sigma: float
    converged: bool


def inject_divergence(curves: list[Curve], rate: float, sparse: bool, rng: np.random.Generator) -> list[Climb]:
    """The trend replaced by a climb of ``rate`` a point from a point at 50-80% of the curve, keeping the curve's own
    noise (its residuals from a centred median of 21 points, 5 on sparse curves)."""
    out: list[Climb] = []
    half = 2 if sparse else 10  # half-width of the centred median that is the trend
    for c in curves:
        n = len(c.values)
        room = 8 if sparse else 25  # points left after the onset
        if n < 2 * room:
            continue
        onset = int(rng.integers(n // 2, max(n // 2 + 1, min(int(0.8 * n), n - room))))
        y = np.log(c.values)
        trend = np.array([np.median(y[max(0, i - half) : i + half + 1]) for i in range(n)])
        climb = trend[onset] + (np.arange(n) - onset) * math.log1p(rate)
        v = np.exp(np.where(np.arange(n) >= onset, climb + y - trend, y))
        after = [i for i, kind, _ in c.alarms(v) if i > onset and kind == "divergence"]
        start, level = math.exp(trend[: onset + 1].max()), math.exp(trend[onset])
        converged = 0.2 * level < CONVERGED_GIVE_BACK * (start - level)
        out.append(Climb(after[0] - onset if after else None, robust_sigma(c.values), converged))
    return out


def divergence_lines(climbs: list[Climb], rate: float) -> list[str]:
    """Caught, and caught before +20%, overall and by the curve's noise; converged curves apart."""

    def line(name: str, group: list[Climb]) -> str:
        got = [c.delay for c in group if c.delay is not None]
        before = sum((1 + rate) ** d - 1 < 0.2 for d in got)
        rises = [(1 + rate) ** d - 1 for d in got]
        tail = f"; rise at alarm median {np.median(rises):.1%}, max {max(rises):.1%}" if got else ""
        return f"    {name:26s} caught {len(got):3d}/{len(group):3d}, before +20%: {before:3d}/{len(group):3d}{tail}"

    live = [c for c in climbs if not c.converged]
    lo, hi = NOISE_BANDS
    out = [line("not converged, all", live)]
    for name, keep in (
        (f"  noise < {lo:.0%}/point", lambda c: c.sigma < lo),
        (f"  noise {lo:.0%}-{hi:.0%}/point", lambda c: lo <= c.sigma < hi),
        (f"  noise >= {hi:.0%}/point", lambda c: c.sigma >= hi),
    ):
        group = [c for c in live if keep(c)]
        if group:
            out.append(line(name, group))
    converged = [c for c in climbs if c.converged]
    if converged:
        out.append(line("converged (no target)", converged))
    return out


def inject_nan(curves: list[Curve], rng: np.random.Generator) -> tuple[int, int]:
    caught = 0
    for c in curves:
        v = c.values.copy()
        at = int(rng.integers(len(v) // 4, len(v)))
        v[at] = math.nan
        caught += any(i == at and kind == "nonfinite" for i, kind, _ in c.alarms(v))
    return caught, len(curves)


def injected_part(records: list[dict[str, Any]], wild: Path) -> None:
    rng = np.random.default_rng(SEED)
    kinds = {"dense": (dense_curves(records), 0.01), "sparse": (sparse_curves(records, wild), 0.05)}
    print("\n## 3. Injected events (dense: live per-step losses; sparse: 8-50 point val/epoch losses, live and wild)")
    for name, (curves, rate) in kinds.items():
        if not curves:
            print(f"{name}: no curves")
            continue
        sparse = name == "sparse"
        res = inject_spikes(curves, sparse, rng)
        rec = res["hits"] / np.maximum(res["total"], 1)
        print(f"\n{name}: {len(curves)} curves. Spikes of 8-80 noise units that are also >= 5% of the loss, caught "
              "within 2 points:")  # fmt: skip
        print("  size (sd)  " + " ".join(f"{m:6.0f}" for m in SPIKE_SIZES) + "     all")
        overall = res["hits"].sum() / max(res["total"].sum(), 1)
        cells = " ".join(f"{x:6.0%}" for x in rec)
        print(f"  caught     {cells} {overall:7.1%}  ({int(res['total'].sum())} injected)")
        rel = ", ".join(
            f"x{f:g} {band}: {res['rel_hits'][(f, band)]}/{n}" for (f, band), n in sorted(res["rel_total"].items())
        )
        print(f"  relative spikes, caught/injected by size and its noise units: {rel}")
        print(f"  divergence (+{rate:.0%}/point from 50-80% of the curve):")
        for text in divergence_lines(inject_divergence(curves, rate, sparse, rng), rate):
            print(text)
        caught, n = inject_nan(curves, rng)
        print(f"  NaN caught at its step: {caught}/{n}")


def load_runs(cache: Path) -> list[dict[str, Any]]:
    """Every record of the cache (``live_runs.py`` writes them), each with ``record["curves"]``: column -> points."""
    out = []
    for path in sorted(cache.glob("*.json")) if cache.is_dir() else []:
        record = json.loads(path.read_text())
        with open(path.with_suffix(".csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        cols = [c for c in (rows[0] if rows else ()) if c != "step"]
        record["curves"] = {c: [(int(r["step"]), float(r[c])) for r in rows if r[c] != ""] for c in cols}
        out.append(record)
    return out


# --- grouped cross-validation of the thresholds (--cv) -------------------------------------------------------------


@dataclass
class GroupScore:
    """What one setting of a threshold does on one group of curves."""

    crit: int = 0  # false critical alerts (and stops)
    false: int = 0  # false warning-level spike/divergence alarms
    exposure: int = 0  # steps (live runs) or points (logs, curves)
    div: int = 0  # injected divergences (not on converged curves) ...
    div_ok: int = 0  # ... caught before the loss rose 20%
    spikes: int = 0  # eligible injected spikes ...
    spikes_ok: int = 0  # ... caught within 2 points
    real: int = 0  # real divergences (labelled curves) ...
    real_crit: int = 0  # ... confirmed (critical)

    def cost(self) -> float:
        """What a setting costs on this group: a false critical alert or a missed real divergence weighs 10 false
        warnings, a divergence not caught before +20% 3, a missed spike 1."""
        return 10 * (self.crit + self.real - self.real_crit) + self.false + 3 * (self.div - self.div_ok) + (
            self.spikes - self.spikes_ok
        )

    def __add__(self, other: GroupScore) -> GroupScore:
        return GroupScore(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values(), strict=True)))


def score_groups(records: list[dict[str, Any]], wild: Path, curves: Path) -> dict[str, GroupScore]:
    """Every group's score under the detectors as they are now configured (the CV patches their constants)."""
    out: dict[str, GroupScore] = defaultdict(GroupScore)
    rng = np.random.default_rng(SEED)
    for r in records:
        spec, g = r["spec"], out[f"live:{r['spec']['group']}"]
        replay = replay_run(r["curves"], spec["monitor"], spec["mode"])
        judge = Judge(r["curves"], scores=[spec["monitor"]] if spec["mode"] == "max" else [])
        events = as_dicts(replay.anomalies)
        g.crit += sum(a["severity"] == "critical" for a in events) + (replay.stop is not None)
        g.false += sum(judge.false_alarm(a) for a in events)
        g.exposure += r["steps_trained"]
    for c in dense_curves(records):
        _score_injections(out[f"live:{c.source.rsplit('-', 1)[0]}"], [c], False, 0.01, rng)
    if wild.is_dir():
        columns = read_wild(wild)
        for col in columns:
            g = out["wild:losses" if col.mode == "min" else "wild:scores"]
            found = as_dicts(replay_column(col, columns))
            points = list(zip(col.steps.tolist(), col.values.tolist(), strict=True))
            judge = Judge({TRAIN_LOSS if is_training_loss(col.name) else col.name: points},
                          scores=[col.name] if col.mode == "max" else [])  # fmt: skip
            g.crit += sum(a["severity"] == "critical" for a in found)
            g.false += sum(judge.false_alarm(a) for a in found)
            g.exposure += len(col.values)
        _score_injections(out["wild:losses"], sparse_curves([], wild), True, 0.05, rng)
    if curves.is_dir():
        _score_labelled_curves(out, curves, rng)
    return dict(out)


def _score_injections(g: GroupScore, curves: list[Curve], sparse: bool, rate: float, rng: np.random.Generator) -> None:
    res = inject_spikes(curves, sparse, rng)
    g.spikes += int(res["total"].sum())
    g.spikes_ok += int(res["hits"].sum())
    for climb in inject_divergence(curves, rate, sparse, rng):
        if not climb.converged:
            g.div += 1
            g.div_ok += climb.delay is not None and (1 + rate) ** climb.delay - 1 < 0.2


_LABELLED: dict[Path, list[dict[str, Any]]] = {}


def _score_labelled_curves(out: dict[str, GroupScore], curves: Path, rng: np.random.Generator) -> None:
    """The labelled curves of benchmarks/anomaly_detection.py: false alarms on the clean ones (its judges), its
    injected divergences and spikes, and the real divergences confirmed (critical)."""
    import anomaly_detection as ad  # the labelled curves' own benchmark: its loader, judges and detector replay

    if curves not in _LABELLED:  # the curves and their hindsight judges do not depend on the detectors: load once
        runs = ad.load(curves)
        for r in runs:
            r["hz"] = ad.hindsight_z(r["values"])[0] if r["label"] != "divergence" else None
        _LABELLED[curves] = runs
    for r in _LABELLED[curves]:
        g = out["curves:mng" if r["run"].startswith("mng") else "curves:algoperf"]
        if r["label"] == "divergence":
            g.real += 1
            g.real_crit += any(k == "divergence" and sev == "critical" for _, k, sev in ad.ours(r, r["values"]))
            continue
        if not (r["label"] == "none" or r["run"].startswith("mng__")):
            continue
        hz = r["hz"]
        for i, kind, sev in ad.ours(r, r["values"]):
            mng_spike_ok = kind == "spike" and r["run"].startswith("mng") and hz[i] >= 4.0
            g.false += kind in ("divergence", "spike") and not mng_spike_ok
            g.crit += sev == "critical"
        g.exposure += len(r["values"])
        c = Curve(r["run"], r["steps"], r["values"], as_loss=True)
        for climb in inject_divergence([c], 0.01, False, rng):
            g.div += 1
            g.div_ok += climb.delay is not None and 1.01**climb.delay - 1 < 0.2


def _cv_knobs() -> dict[str, tuple[Any, str, Any, tuple[float, ...]]]:
    """The thresholds fitted: (module, name, dict key or None, grid)."""
    from curvecast.forecasting.anomalies import blowup, climb, instability, progress

    return {
        "CONFIRM_Z": (blowup, "CONFIRM_Z", None, (2.0, 3.0, 4.0, 5.0, 6.0)),
        "CLIMB_GIVEN_BACK[min]": (climb, "CLIMB_GIVEN_BACK", "min", (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02)),
        "TRANSIENT_DROP": (progress, "TRANSIENT_DROP", None, (0.02, 0.05, 0.1, 0.2, 0.4)),
        "GRAD_SPIKE_MIN_RISE": (instability, "GRAD_SPIKE_MIN_RISE", None, (0.02, 0.1, 0.25, 0.5, 1.0)),
        "_RISE_Z (sustained rise)": (climb, "_RISE_Z", None, (1.5, 2.0, 2.5, 3.0)),
    }


def _set(module: Any, name: str, key: Any, value: float) -> Any:
    """Set a detector constant (a dict entry when ``key``); return the old value."""
    if key is None:
        old = getattr(module, name)
        setattr(module, name, value)
    else:
        table = getattr(module, name)
        old, table[key] = table[key], value
    return old


def cross_validate(records: list[dict[str, Any]], wild: Path, curves: Path) -> None:
    """Leave one group out: for each threshold (the others at their defaults), the value the other groups' cost
    prefers, and what it does on the group left out, beside the default's figures there."""
    print("\n## Grouped cross-validation: each threshold fitted on all groups but one, scored on the one left out")
    print("cost = 10 x (false critical + missed real divergence) + false warnings + 3 x divergences not caught before")
    print("+20% + missed spikes. Held-out columns: crit / false / div ok of div / spikes ok of spikes.")
    for knob, (module, name, key, grid) in _cv_knobs().items():
        default = getattr(module, name)[key] if key is not None else getattr(module, name)
        scores: dict[float, dict[str, GroupScore]] = {}
        for value in grid:
            old = _set(module, name, key, value)
            try:
                scores[value] = score_groups(records, wild, curves)
            finally:
                _set(module, name, key, old)
        groups = sorted(scores[grid[0]])
        print(f"\n{knob} (default {default:g}; grid {', '.join(f'{v:g}' for v in grid)})")
        print(f"  {'left out':22s} {'chosen':>7s} | held out at chosen            | held out at default")
        for held in groups:
            chosen = min(grid, key=lambda v: (sum(scores[v][g].cost() for g in groups if g != held), v != default))
            print(f"  {held:22s} {chosen:7g} | {_cv_cells(scores[chosen][held]):30s} | "
                  f"{_cv_cells(scores[default][held])}")  # fmt: skip
        print("  all groups, by value: cost | crit false div-ok/div spikes-ok/spikes real-crit/real")
        for v in grid:
            total = sum((scores[v][g] for g in groups), GroupScore())
            print(f"    {v:8g}: {total.cost():5.0f} | {_cv_cells(total)} {total.real_crit:3d}/{total.real}")


def _cv_cells(g: GroupScore) -> str:
    return f"{g.crit:3d} {g.false:4d} {g.div_ok:4d}/{g.div:<4d} {g.spikes_ok:4d}/{g.spikes:<4d}"


# --- main -------------------------------------------------------------------------------------------------------------


def live_records(cache: Path, runs: int | None, train: bool) -> list[dict[str, Any]]:
    """The healthy live runs: trained into the cache first when asked and torch is there; read from the cache."""
    if train:
        try:
            import live_runs  # needs torch and Lightning, which the rest of this script does not
        except ImportError as error:
            print(f"(cannot train live runs here: {error}; using what {cache} holds)")
        else:
            live_runs.quiet_curvecast_console()
            live_runs.ensure_runs(live_runs.default_specs()[:runs], cache)
    records = load_runs(cache)
    return records[:runs] if runs is not None else records


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"live runs (default {DEFAULT_CACHE})")
    p.add_argument("--wild", type=Path, default=DEFAULT_WILD, help=f"wild logs (default {DEFAULT_WILD})")
    p.add_argument("--runs", type=int, default=None, help="use the first N live runs of the default set")
    p.add_argument("--no-train", action="store_true", help="never train: use the runs the cache holds")
    p.add_argument("--cv", action="store_true", help="also cross-validate the thresholds, leaving one group out")
    p.add_argument("--curves", type=Path, default=DEFAULT_CURVES, help="labelled curves, for --cv")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    records = live_records(args.cache, args.runs, train=not args.no_train)
    print(f"# False alarms of curvecast's live detectors ({len(records)} live runs from {args.cache})")
    if records:
        live_part(records)
    if args.wild.is_dir():
        wild_part(args.wild)
    else:
        print(f"\n(no wild logs at {args.wild})")
    injected_part(records, args.wild)
    if args.cv:
        cross_validate(records, args.wild, args.curves)
    print(f"\n(ran in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    from results import recorded

    with recorded("false_alarms"):
        main()
