"""Forecast-based early stopping against Lightning's EarlyStopping, on real curves replayed as if live.

    python benchmarks/early_stopping.py [--curves DIR] [--max-checks 30] [--only algoperf|mng]

Each run in ../shared/data/curves is replayed check by check: at each validation point (at most ``--max-checks``
of them, evenly spaced, for curvecast; every one for Lightning) the stopper sees the curve so far. The monitored
series is the validation loss (the training loss where a run has too few validation points). The run's budget is its
last logged step. The target of a run comes from the *other* runs of the same workload (same source, workload and
submission for AlgoPerf; same record folder for modded-nanogpt): the median of their final values, so that about half
of the runs can reach it. Workloads with a single run are skipped.

- curvecast: ``Forecaster`` fit on the prefix (with the run's LR schedule when the CSV has one), the streaming
  ``AnomalyDetector`` over the points, and ``ForecastStopRule`` (the logic of ``ForecastEarlyStopping``) with the
  target; the LR so far tells it whether a coming decay has begun (before it has, the target check reads the forecast
  with a widened interval; ``held before a decay`` holds the stop until then instead).
  When the schedule is unknown (many AlgoPerf CSVs carry no LR column, though those runs do decay their LR) the rule
  trusts the forecast on two more checks by default; ``hold on unknown LR`` holds every such stop instead, and
  ``assume_constant_lr`` trusts it with no extra checks. Two more variants trade the threshold against the patience.
  Each check's forecast is made once and read by every variant.
- Lightning: ``EarlyStopping(monitor, patience=p)``, which knows no target: it stops when the series has not improved
  for ``p`` validation checks.

Printed per method: runs stopped, compute saved (steps not run over all steps), regret (stopped runs that would have
reached the target later), and, of the runs that could never reach their target, how many were stopped and the share
of their steps saved. Then three synthetic runs under a cosine schedule (two that cannot reach their target, one that
reaches it only through the decay): where curvecast stops each, with and without the hold before a decay. Last,
two synthetic episode returns (higher is better, no bound) watched with a target, one still climbing to it and one
levelling off below it: where curvecast stops each, with and without the open ceiling (``open_ceiling.py``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curvecast.forecasting import AnomalyDetector, Forecaster, Report  # noqa: E402
from curvecast.integrations.stop_rule import ForecastStopRule  # noqa: E402


@dataclass
class Run:
    run_id: str
    group: str
    steps: np.ndarray
    values: np.ndarray
    lrs: np.ndarray | None  # LR at every step 0..horizon, or None
    target: float = math.nan
    reached_at: int | None = None  # first step at or below the target (at or above it for mode "max"), or None
    stops: dict[str, int | None] = field(default_factory=dict)
    mode: str = "min"  # "max": higher is better (a return)

    @property
    def horizon(self) -> int:
        return int(self.steps[-1])


def load_runs(curves: Path, only: str | None) -> list[Run]:
    runs = []
    for meta_path in sorted(curves.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        run_id = meta["run_id"]
        if only and not run_id.startswith(only):
            continue
        rows = list(csv.DictReader((curves / f"{run_id}.csv").open()))
        column = "val_loss" if sum(bool(r["val_loss"]) for r in rows) >= 10 else "train_loss"
        points = [(int(r["step"]), float(r[column])) for r in rows if r[column]]
        if len(points) < 10:
            continue
        steps = np.array([p[0] for p in points])
        values = np.array([p[1] for p in points])
        lr_points = [(int(r["step"]), float(r["lr"])) for r in rows if r["lr"]]
        lrs = None
        if len(lr_points) >= 2:
            lr_steps, lr_values = zip(*lr_points, strict=True)
            lrs = np.interp(np.arange(int(steps[-1]) + 1), lr_steps, lr_values)
        if run_id.startswith("mng__"):
            group = meta.get("split_group", run_id)
        else:
            group = f"{meta.get('submission')}/{meta.get('workload')}"
        runs.append(Run(run_id, group, steps, values, lrs))
    return runs


def final_value(run: Run) -> float:
    finite = run.values[np.isfinite(run.values)]
    return float(np.median(finite[-3:])) if len(finite) else math.inf


def set_targets(runs: list[Run]) -> list[Run]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.group].append(run)
    kept = []
    for members in groups.values():
        if len(members) < 2:
            continue
        for run in members:
            others = [final_value(o) for o in members if o is not run and math.isfinite(final_value(o))]
            if not others:
                continue
            run.target = statistics.median(others)
            hit = np.flatnonzero(run.values <= run.target)
            run.reached_at = int(run.steps[hit[0]]) if hit.size else None
            kept.append(run)
    return kept


@dataclass(frozen=True)
class Check:
    """One check of a replayed run: the report the rule reads, and the LR now and its peak so far (None: unknown)."""

    report: Report
    lr: float | None
    peak_lr: float | None


def run_checks(run: Run, max_checks: int, forecaster: Forecaster | None = None) -> list[Check]:
    """Every check curvecast makes on the run, forecast once: the reports do not depend on the rule reading them."""
    detector = AnomalyDetector(series="loss") if run.mode == "min" else None  # a return's detectors: not replayed
    checks = set(np.unique(np.linspace(0, len(run.steps) - 1, max_checks + 1).round().astype(int)[1:]).tolist())
    forecaster = forecaster or Forecaster()
    out = []
    for i, (step, value) in enumerate(zip(run.steps.tolist(), run.values.tolist(), strict=True)):
        anomalies = tuple(detector.update(step, value)) if detector is not None else ()
        if i not in checks and not any(a.severity == "critical" for a in anomalies):
            continue
        if step >= run.horizon:
            break  # the run is over: nothing left to save
        known = run.lrs is not None
        forecast = forecaster.fit(
            run.steps[: i + 1], run.values[: i + 1], horizon=run.horizon, lrs=run.lrs, mode=run.mode
        )
        lr = peak = None
        drop_ahead = False
        if known:
            lr, peak = float(run.lrs[step]), float(run.lrs[: step + 1].max())
            drop_ahead = bool(lr > 0 and run.lrs[step:].min() < 0.5 * lr)
        report = Report(
            step=step,
            monitor="loss" if run.mode == "min" else "reward",
            mode=run.mode,
            horizon=run.horizon,
            forecast=forecast,
            anomalies=anomalies,
            target=run.target,
            lr_schedule_known=known,
            lr_drop_ahead=drop_ahead,
            lr=lr,
            peak_lr=peak,
        )
        out.append(Check(report, lr, peak))
    return out


def replay_curvecast(run: Run, checks: list[Check], **rule_kwargs) -> int | None:
    """The step at which curvecast would stop the run, or None."""
    rule = ForecastStopRule(target=run.target, **rule_kwargs)
    for check in checks:
        if rule.update(check.report) is not None:
            return check.report.step
    return None


# (label, target, lr_part): the loss ends near 2.0 + 0.15 at step 4000, with lr_part more at the peak LR.
COSINE_CASES = (
    ("hopeless: target 25% below where it ends", 1.6, 0.2),
    ("hopeless: target 10% below where it ends", 1.92, 0.2),
    ("healthy: reaches its target through the decay", 2.2, 0.6),
)


def cosine_run(target: float, lr_part: float, horizon: int = 4000) -> Run:
    """A run validated every 40 steps under a cosine schedule: ``2 + 10 (t+1)^-0.5`` (1% noise) + ``lr_part * lr``."""
    rng = np.random.default_rng(0)
    t = np.arange(0, horizon + 1)
    cosine = 0.5 * (1.0 + np.cos(np.pi * t / horizon))
    steps = t[40::40]
    values = (2.0 + 10.0 * (steps + 1.0) ** -0.5) * np.exp(rng.normal(0, 0.01, len(steps))) + lr_part * cosine[steps]
    run = Run(f"cosine/{target}/{lr_part}", "synthetic", steps, values, 0.1 * cosine, target=target)
    hit = np.flatnonzero(values <= target)
    run.reached_at = int(steps[hit[0]]) if hit.size else None
    return run


# (label, target, the return's ceiling, its time constant): 8 (1 - e^(-t/tau)) + noise of 0.1, logged every 40 steps of
# 4000 at a constant LR, higher better and unbounded (the ceiling is the runs', not the metric's).
RETURN_CASES = (
    ("healthy: a return still climbing to its target", 6.0, 8.0, 2400.0),
    ("hopeless: a return levelling off below it", 6.0, 5.0, 600.0),
)


def return_run(target: float, ceiling: float, tau: float, horizon: int = 4000) -> Run:
    """An episode return that climbs towards ``ceiling`` with time constant ``tau``, watched with ``target``."""
    rng = np.random.default_rng(0)
    steps = np.arange(40, horizon + 1, 40)
    values = ceiling * (1.0 - np.exp(-steps / tau)) + rng.normal(0, 0.1, len(steps))
    run = Run(f"return/{ceiling}/{tau}", "synthetic", steps, values, np.full(horizon + 1, 1e-3), target=target)
    run.mode = "max"
    hit = np.flatnonzero(values >= target)
    run.reached_at = int(steps[hit[0]]) if hit.size else None
    return run


def replay_lightning(run: Run, patience: int) -> int | None:
    """The step at which Lightning's EarlyStopping(patience) would stop the run, or None."""
    import torch
    from pytorch_lightning.callbacks import EarlyStopping

    stopper = EarlyStopping(monitor="val_loss", patience=patience, mode="min")
    for step, value in zip(run.steps.tolist(), run.values.tolist(), strict=True):
        should_stop, _ = stopper._evaluate_stopping_criteria(torch.tensor(value))
        if should_stop and step < run.horizon:
            return step
    return None


def summarize(name: str, runs: list[Run]) -> str:
    total = sum(r.horizon for r in runs)
    stopped = [r for r in runs if r.stops[name] is not None]
    saved = sum(r.horizon - r.stops[name] for r in stopped)
    regret = [r for r in stopped if r.reached_at is not None and r.reached_at > r.stops[name]]
    hopeless = [r for r in runs if r.reached_at is None]
    hopeless_stopped = [r for r in hopeless if r.stops[name] is not None]
    hopeless_saved = sum(r.horizon - r.stops[name] for r in hopeless_stopped) / max(sum(r.horizon for r in hopeless), 1)
    return (
        f"{name:<34} {len(stopped):>4}/{len(runs):<4} {saved / total:>8.1%} {len(regret):>7} "
        f"{len(hopeless_stopped):>4}/{len(hopeless):<4} {hopeless_saved:>10.1%}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--curves", type=Path, default=ROOT.parent / "shared" / "data" / "curves")
    parser.add_argument("--max-checks", type=int, default=30)
    parser.add_argument("--only", choices=("algoperf", "mng"), default=None)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    runs = set_targets(load_runs(args.curves, args.only))
    methods = {
        "curvecast (defaults)": {},
        "curvecast, held before a decay": {"pre_decay_scale": None},
        "curvecast, hold on unknown LR": {"unknown_lr_extra_patience": None},
        "curvecast, assume_constant_lr": {"assume_constant_lr": True},
        "curvecast, p<10%, patience 2": {"prob_threshold": 0.10, "patience": 2},
        "curvecast, p<30%, patience 8": {"prob_threshold": 0.30, "patience": 8},
    }
    for run in runs:
        checks = run_checks(run, args.max_checks)
        for name, kwargs in methods.items():
            run.stops[name] = replay_curvecast(run, checks, **kwargs)
        for patience in (3, 10, 20):
            run.stops[f"Lightning EarlyStopping(patience={patience})"] = replay_lightning(run, patience)

    reachable = sum(r.reached_at is not None for r in runs)
    print(f"{len(runs)} runs in {len({r.group for r in runs})} workloads; {reachable} reach their target at some point")
    print(f"{'method':<34} {'stopped':>9} {'saved':>8} {'regret':>7} {'hopeless stopped':>16} {'their saved':>10}")
    for name in runs[0].stops if runs else []:
        print(summarize(name, runs))
    print("\nsynthetic runs under a cosine schedule (power law + a part the LR holds up), stop step / budget:")
    for label, target, lr_part in COSINE_CASES:
        run = cosine_run(target, lr_part)
        checks = run_checks(run, args.max_checks)
        stops = {name: replay_curvecast(run, checks, **methods[name]) for name in list(methods)[:2]}
        cells = "  ".join(
            f"{name}: {'runs to the end' if s is None else f'{s / run.horizon:.0%}'}" for name, s in stops.items()
        )
        print(f"  {label:<44} {cells}")
    print("\nsynthetic episode returns (higher is better, no bound), stop step / budget:")
    for label, target, ceiling, tau in RETURN_CASES:
        run = return_run(target, ceiling, tau)
        stops = {
            # Without the open ceiling, the interval ends at the best value plus one half's improvement.
            name: replay_curvecast(run, run_checks(run, args.max_checks, Forecaster(open_ceiling=open_ceiling)))
            for name, open_ceiling in (("curvecast (defaults)", True), ("curvecast, no open ceiling", False))
        }
        cells = "  ".join(
            f"{name}: {'runs to the end' if s is None else f'{s / run.horizon:.0%}'}" for name, s in stops.items()
        )
        print(f"  {label:<44} {cells}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    from results import recorded

    with recorded("early_stopping"):
        main()
