"""Sweeps pruned by every method, side by side: steps trained and regret, per task and seed.

    nice python benchmarks/sweeps.py [--tasks crossing lm noisy_cls algoperf] [--seeds 0 1] [--trials 24]
        [--methods none median halving hyperband wilcoxon asha ray_median curvecast curvecast_ray] [--workers 4]
        [--explain]

Each sweep is a list of trial curves replayed in trial order, one report per validation, through each method's real
code: Optuna's ``MedianPruner``, ``SuccessiveHalvingPruner``, ``HyperbandPruner`` and ``WilcoxonPruner`` (default
settings) and curvecast's ``ForecastPruner`` in a real Optuna study (in memory); Ray Tune's ``ASHAScheduler`` and
``MedianStoppingRule`` (default settings, ``grace_period`` one report) and curvecast's ``ForecastScheduler``, called as
Ray Tune calls a scheduler. A trial runs until its method stops it; ``none`` runs every trial to its end. The same
curves reach every method, so they differ only in which trials they stop, and when.

Tasks (replayed curves, cheap enough for two CPU cores):

- ``crossing``: a run family where curves cross: loss with a noise floor proportional to the LR, so a high LR trails
  until its cosine decay removes the floor, then ends best; too high an LR ends worse (400 steps, a report every 20).
- ``lm``: a small language model's loss with 5% linear warmup and cosine decay: width and LR drawn, a too high LR for
  the width diverges (1000 steps, a report every 50).
- ``noisy_cls``: validation accuracy (maximized) of a classifier on labels with 10% noise: a validation set of 500
  (binomial noise of about 1.5 points), constant LR, some settings overfit late (400 steps, a report every 20).
- ``algoperf``: each AlgoPerf study of ``../shared/data/curves`` (a submission x workload x study, 4-5 trials) as one
  sweep, in trial order: ``val_loss`` read at 20 evenly spaced steps of the planned run; the seed is not used.

The trials of the synthetic tasks carry their horizon and planned LR schedule as curvecast's ``TrialReporter`` stores
them, so curvecast's own forecast knows the decay ahead; Optuna's and Ray's methods read only the values.

Printed per task and seed: the floor (the least share of the steps any method can train at a regret of at most 0.5%,
trials in order: the first trial to its end, since nothing has reported to judge it against, one trial ending within
0.5% of the best to its end, every other trial stopped at its first report), then each method's steps trained (% of
the unpruned sweep) and regret (how much worse its best completed trial's final is than the unpruned sweep's best,
relative); then, per task, whether curvecast meets the goal (at most 40% of the steps at a regret of at most 0.5%, and
fewer steps than every incumbent at no more regret), saying so where the floor itself is over 40%. The summary, per
task (the AlgoPerf studies together), gives each method's mean steps, worst regret, the sweeps over 0.5% regret and
the sweeps at most 40% at a regret of at most 0.5%; its floor row counts the sweeps where that is possible at all. With
``--workers 4`` the crossing task also runs on one SQLite storage with 4 worker threads under ``ForecastPruner``,
checking that no report is lost.

``--explain`` prints, under each sweep, every trial of curvecast's Optuna run: its final, how far from the sweep's
best, the step it was stopped at or that it ran to its end, and the rule's reason (``Verdict.reason``) at its last
report; then, per task, where the steps of the trials that do not end within 0.5% of the best went, by the reason
the rule kept them at each report (the numbers in it left out): what a change of the rule can still save.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from curvecast.integrations.optuna import ForecastPruner  # noqa: E402
from curvecast.integrations.sweep_judge import HORIZON_ATTR, SCHEDULE_ATTR, horizon_record  # noqa: E402

CURVES = ROOT.parent / "shared" / "data" / "curves"
OPTUNA_METHODS = ("median", "halving", "hyperband", "wilcoxon", "curvecast")
RAY_METHODS = ("asha", "ray_median", "curvecast_ray")
METHODS = ("none", *OPTUNA_METHODS, *RAY_METHODS)
INCUMBENTS = ("median", "halving", "hyperband", "wilcoxon", "asha", "ray_median")


@dataclass
class Trial:
    """One trial's curve as its run would report it."""

    steps: np.ndarray
    values: np.ndarray
    horizon: int
    schedule: dict[str, list[float]] | None = None  # as TrialReporter stores it


@dataclass
class Sweep:
    task: str
    seed: int
    mode: str
    trials: list[Trial]


# -- tasks -------------------------------------------------------------------------------------------------------------


def warmup_cosine(horizon: int, warmup: float) -> np.ndarray:
    """The LR multiplier of every step 0..horizon: linear warmup over ``warmup`` of the run, then cosine to 0."""
    t = np.arange(horizon + 1, dtype=np.float64)
    w = max(int(warmup * horizon), 1)
    cosine = 0.5 * (1 + np.cos(np.pi * np.clip((t - w) / (horizon - w), 0, 1)))
    return np.where(t < w, (t + 1) / w, cosine)


def _schedule_record(u: np.ndarray, peak: float) -> dict[str, list[float]]:
    knots = np.unique(np.linspace(0, len(u) - 1, 101).round().astype(int))
    return {"steps": [int(k) for k in knots], "lrs": [float(peak * u[k]) for k in knots]}


def crossing(seed: int, n: int) -> Sweep:
    rng = np.random.default_rng(seed)
    horizon, every = 400, 20
    u = warmup_cosine(horizon, 0.05)
    steps = np.arange(every, horizon + 1, every)
    trials = []
    for _ in range(n):
        lr = 10 ** rng.uniform(-2.5, 0.3)
        progress = np.cumsum(u) * lr
        floor = 1.0 + 0.4 * max(0.0, math.log10(lr / 0.6)) ** 2 * 4
        loss = floor + 2.0 * (1 + progress / 3) ** -0.7 + 1.2 * lr * u
        values = loss[steps] * (1 + 0.01 * rng.standard_normal(len(steps)))
        trials.append(Trial(steps, values, horizon, _schedule_record(u, lr)))
    return Sweep("crossing", seed, "min", trials)


def lm(seed: int, n: int) -> Sweep:
    rng = np.random.default_rng(seed + 100)
    horizon, every = 1000, 50
    u = warmup_cosine(horizon, 0.05)
    steps = np.arange(every, horizon + 1, every)
    trials = []
    for _ in range(n):
        width = int(rng.choice([64, 128, 256, 512]))
        lr = 10 ** rng.uniform(-3.5, -1.3)
        best_lr = 0.01 * (128 / width) ** 0.5
        floor = 2.0 + 1.2 * (64 / width) ** 0.6 + 0.08 * math.log10(lr / best_lr) ** 2
        progress = np.cumsum(u) * lr / best_lr
        loss = floor + 6.0 * (1 + progress / 20) ** -0.55 + 0.25 * (lr / best_lr) * u
        if lr > 4 * best_lr:  # too high for the width: the loss blows up after the warmup and stays up
            blow = int(rng.integers(60, 300))
            loss[blow:] = np.maximum(loss[blow:], 7.0 + 0.3 * rng.standard_normal())
        values = loss[steps] * (1 + 0.005 * rng.standard_normal(len(steps)))
        trials.append(Trial(steps, values, horizon, _schedule_record(u, lr)))
    return Sweep("lm", seed, "min", trials)


def noisy_cls(seed: int, n: int) -> Sweep:
    rng = np.random.default_rng(seed + 200)
    horizon, every, val_size = 400, 20, 500
    steps = np.arange(every, horizon + 1, every)
    trials = []
    for _ in range(n):
        lr = 10 ** rng.uniform(-3, 0)
        decay = 10 ** rng.uniform(-5, -1)
        ceiling = 0.9 - 0.06 * math.log10(lr / 0.05) ** 2 - 0.3 * max(0.0, math.log10(decay / 0.01))
        tau = 60 * (0.05 / lr) ** 0.6
        overfit = 0.08 * max(0.0, -math.log10(decay / 1e-3)) / 2
        acc = ceiling - (ceiling - 0.1) * np.exp(-((steps / tau) ** 0.8)) - overfit * (steps / horizon) ** 2
        acc = np.clip(acc, 0.05, 0.95)
        values = rng.binomial(val_size, acc) / val_size
        trials.append(Trial(steps, values.astype(np.float64), horizon, None))
    return Sweep("noisy_cls", seed, "max", trials)


def algoperf_studies() -> list[Sweep]:
    """Each AlgoPerf study of 4 or more trials as one sweep (val_loss at 20 evenly spaced steps of the plan)."""
    studies: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for meta in sorted(CURVES.glob("algoperf__*.json")):
        info = json.loads(meta.read_text())
        studies[info["split_group"]].append((int(info["trial"].split("_")[-1]), meta))
    sweeps = []
    for group, members in sorted(studies.items()):
        if len(members) < 4:
            continue
        trials = []
        for _, meta in sorted(members):
            info = json.loads(meta.read_text())
            horizon = int(info.get("max_global_steps") or info["total_steps"])
            rows = list(csv.DictReader(meta.with_suffix(".csv").open()))
            s = np.array([float(r["step"]) for r in rows if r["val_loss"]])
            v = np.array([float(r["val_loss"]) for r in rows if r["val_loss"]])
            grid = np.linspace(horizon / 20, horizon, 20).round()
            grid = grid[(grid >= s[0]) & (grid <= s[-1])]
            if len(grid) < 2:
                continue
            trials.append(Trial(grid.astype(np.int64), np.interp(grid, s, v), horizon, None))
        name = group.split(":", 2)[-1].replace(":", "/")
        sweeps.append(Sweep(f"algoperf {name}", 0, "min", trials))
    return sweeps


TASKS = {"crossing": crossing, "lm": lm, "noisy_cls": noisy_cls}


# -- methods -----------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    steps: int = 0  # steps trained over all trials
    best: float = math.nan  # the best final among completed trials
    pruned: int = 0
    seconds: float = 0.0
    lost: int = 0  # reports missing from the storage (the parallel run)
    notes: list[str] = field(default_factory=list)
    verdicts: dict[int, list[Any]] = field(default_factory=dict)  # curvecast's, by trial number, one per report


class _ExplainedPruner(ForecastPruner):
    """ForecastPruner keeping every verdict (``--explain``), not only each trial's latest."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[int, list[Any]] = defaultdict(list)

    def prune(self, study: Any, trial: Any) -> bool:
        pruned = super().prune(study, trial)
        self.history[trial.number].append(self.verdicts.get(trial.number))
        return pruned


def _pruner(method: str, horizon: int) -> optuna.pruners.BasePruner:
    if method == "median":
        return optuna.pruners.MedianPruner()
    if method == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if method == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if method == "wilcoxon":
        return optuna.pruners.WilcoxonPruner()
    if method == "curvecast":
        return ForecastPruner()
    return optuna.pruners.NopPruner()


def _better(a: float, b: float, mode: str) -> bool:
    return math.isnan(b) or (a < b if mode == "min" else a > b)


def run_optuna(sweep: Sweep, method: str, explain: bool = False) -> Outcome:
    out = Outcome()
    pruner = _ExplainedPruner() if explain and method == "curvecast" else _pruner(method, sweep.trials[0].horizon)
    direction = "minimize" if sweep.mode == "min" else "maximize"
    study = optuna.create_study(study_name=f"{sweep.task}-{sweep.seed}", direction=direction, pruner=pruner)
    started = time.perf_counter()
    for curve in sweep.trials:
        trial = study.ask()
        if method == "curvecast":  # what TrialReporter stores from the live run
            trial.set_user_attr(HORIZON_ATTR, horizon_record(curve.horizon))
            if curve.schedule is not None:
                trial.set_user_attr(SCHEDULE_ATTR, curve.schedule)
        pruned = False
        for step, value in zip(curve.steps, curve.values, strict=True):
            trial.report(float(value), int(step))
            if method != "none" and trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            out.pruned += 1
        else:
            study.tell(trial, float(curve.values[-1]))
            if _better(float(curve.values[-1]), out.best, sweep.mode):
                out.best = float(curve.values[-1])
    out.steps = sum(max(t.intermediate_values) for t in study.trials)
    out.seconds = time.perf_counter() - started
    if isinstance(pruner, _ExplainedPruner):
        out.verdicts = dict(pruner.history)
    return out


class _RayTrial:
    """What Ray Tune's schedulers read of a trial: its id (hashable, as Ray's ``Trial`` is)."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id, self.status, self.config = trial_id, "RUNNING", {}

    def __repr__(self) -> str:
        return self.trial_id


def run_ray(sweep: Sweep, method: str) -> Outcome:
    """Ray Tune's schedulers called as Ray Tune calls them, one trial at a time in trial order."""
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, TrialScheduler

    from curvecast.integrations.ray_tune import ForecastScheduler

    out = Outcome()
    horizon = sweep.trials[0].horizon
    every = int(sweep.trials[0].steps[0])
    if method == "asha":
        scheduler: Any = ASHAScheduler(time_attr="step", metric="value", mode=sweep.mode, max_t=horizon,
                                       grace_period=every)  # fmt: skip
    elif method == "ray_median":
        scheduler = MedianStoppingRule(time_attr="step", metric="value", mode=sweep.mode, grace_period=every)
    else:
        scheduler = ForecastScheduler(time_attr="step", metric="value", mode=sweep.mode)
    live: list[Any] = []
    controller = SimpleNamespace(get_live_trials=lambda: list(live))
    started = time.perf_counter()
    for index, curve in enumerate(sweep.trials):
        trial = _RayTrial(f"t{index}")
        live[:] = [trial]
        scheduler.on_trial_add(controller, trial)
        stopped, result = False, {}
        for iteration, (step, value) in enumerate(zip(curve.steps, curve.values, strict=True)):
            result = {"step": int(step), "value": float(value), "training_iteration": iteration + 1}
            if method == "curvecast_ray":
                result["curvecast"] = {"horizon": curve.horizon, "schedule": curve.schedule}
            if scheduler.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
                stopped = iteration < len(curve.steps) - 1  # stopped at its last result: it ran to its end
                break
        out.steps += int(step)
        if stopped:
            out.pruned += 1
            scheduler.on_trial_remove(controller, trial)
        else:
            scheduler.on_trial_complete(controller, trial, result)
            if _better(float(curve.values[-1]), out.best, sweep.mode):
                out.best = float(curve.values[-1])
    out.seconds = time.perf_counter() - started
    return out


def run_parallel(sweep: Sweep, workers: int, path: Path) -> Outcome:
    """The sweep on one SQLite storage, ``workers`` threads each running the next trial under ForecastPruner."""
    out = Outcome()
    storage = f"sqlite:///{path}"
    direction = "minimize" if sweep.mode == "min" else "maximize"
    optuna.create_study(study_name="parallel", storage=storage, direction=direction, pruner=ForecastPruner())
    queue = list(enumerate(sweep.trials))
    lock = threading.Lock()
    sent: dict[int, int] = {}
    errors: list[str] = []

    def worker() -> None:
        study = optuna.load_study(study_name="parallel", storage=storage, pruner=ForecastPruner())
        while True:
            with lock:
                if not queue:
                    return
                _, curve = queue.pop(0)
            try:
                trial = study.ask()
                trial.set_user_attr(HORIZON_ATTR, curve.horizon)
                if curve.schedule is not None:
                    trial.set_user_attr(SCHEDULE_ATTR, curve.schedule)
                count, pruned = 0, False
                for step, value in zip(curve.steps, curve.values, strict=True):
                    trial.report(float(value), int(step))
                    count += 1
                    if trial.should_prune():
                        pruned = True
                        break
                with lock:
                    sent[trial.number] = count
                if pruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, float(curve.values[-1]))
            except Exception as error:  # noqa: BLE001 - counted and printed: the check is that none happens
                errors.append(f"{type(error).__name__}: {error}")

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.seconds = time.perf_counter() - started
    study = optuna.load_study(study_name="parallel", storage=storage)
    out.lost = sum(abs(len(t.intermediate_values) - sent.get(t.number, -1)) for t in study.trials)
    out.steps = sum(max(t.intermediate_values, default=0) for t in study.trials)
    done = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    out.best = (min if sweep.mode == "min" else max)(done) if done else math.nan
    out.pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    out.notes = errors
    return out


# -- the table ---------------------------------------------------------------------------------------------------------


def _group(sweep: Sweep) -> str:
    """The summary's group of a sweep: its task, the AlgoPerf studies together."""
    return "algoperf" if sweep.task.startswith("algoperf") else sweep.task


def floor_share(sweep: Sweep, tolerance: float = 0.005) -> float:
    """The least share of the unpruned sweep's steps any method can train at a regret of at most ``tolerance``, trials
    in order: the first trial to its end (nothing has reported yet to judge it against; no method here stops it), one
    trial ending within ``tolerance`` of the best to its end, and every other trial stopped at its first report."""
    sign = 1.0 if sweep.mode == "min" else -1.0
    finals = [sign * float(t.values[-1]) for t in sweep.trials]
    best = min(finals)
    first = [float(t.steps[0]) for t in sweep.trials]
    last = [float(t.steps[-1]) for t in sweep.trials]
    base = last[0] + sum(first[1:])
    cheapest = min(
        (base - first[k] + last[k] if k else base)
        for k, f in enumerate(finals)
        if f - best <= tolerance * abs(best)
    )  # fmt: skip
    return cheapest / sum(last)


_NUMBER = re.compile(r"[-+]?\d[\d.e+-]*%?")


def explain(sweep: Sweep, outcome: Outcome, total: int, kept: dict[str, float], tolerance: float = 0.005) -> None:
    """Print each trial of curvecast's run (where it stopped, or that it ran on, and why), and add to ``kept`` the
    steps of the trials not ending within ``tolerance`` of the best, as shares of the unpruned sweep's ``total``, by
    the rule's reason at the report that kept them going (its numbers left out)."""
    sign = 1.0 if sweep.mode == "min" else -1.0
    finals = [sign * float(t.values[-1]) for t in sweep.trials]
    best = min(finals)
    for number, trial in enumerate(sweep.trials):
        history = outcome.verdicts.get(number, [])
        last = history[-1] if history else None
        gap = (finals[number] - best) / abs(best)
        stopped = last is not None and last.prune and len(history) < len(trial.steps)
        where = f"stopped at {int(trial.steps[len(history) - 1])}" if stopped else "ran to its end"
        print(f"    trial {number:>2}: final {trial.values[-1]:.4g} ({gap:+.2%} from the best), {where}: "
              f"{last.reason if last is not None else '-'}")  # fmt: skip
        if gap <= tolerance:
            continue
        kept["before its first report"] += float(trial.steps[0]) / total
        for k, verdict in enumerate(history[: len(trial.steps) - 1]):
            if verdict is None or verdict.prune:
                break
            why = _NUMBER.sub("#", verdict.reason)
            kept[why] += float(trial.steps[k + 1] - trial.steps[k]) / total


def regret(best: float, reference: float, mode: str) -> float:
    if math.isnan(best):
        return math.inf
    gap = best - reference if mode == "min" else reference - best
    return max(gap, 0.0) / abs(reference)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=[*TASKS, "algoperf"], choices=[*TASKS, "algoperf"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--workers", type=int, default=4, help="threads of the SQLite run (0: skip it)")
    parser.add_argument("--explain", action="store_true", help="why curvecast stopped or kept each trial")
    args = parser.parse_args(argv)
    methods = ["none", *[m for m in args.methods if m != "none"]]
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        methods = [m for m in methods if m not in RAY_METHODS]
        print("Ray Tune is not installed: its methods are left out")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("curvecast").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    sweeps = [TASKS[t](seed, args.trials) for t in args.tasks if t in TASKS for seed in args.seeds]
    if "algoperf" in args.tasks:
        sweeps += algoperf_studies()
    short = {"none": "none", "median": "median", "halving": "halving", "hyperband": "hyperbd", "wilcoxon": "wilcox",
             "curvecast": "cc-optuna", "asha": "asha", "ray_median": "ray-med", "curvecast_ray": "cc-ray"}  # fmt: skip
    print("steps trained (% of the unpruned sweep) / regret of the best completed trial, per task and seed")
    print(f"{'task':<40} {'seed':>4} {'floor':>6} " + " ".join(f"{short[m]:>15}" for m in methods[1:]))
    misses = []
    summary: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    floors: dict[str, list[float]] = defaultdict(list)
    kept: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for sweep in sweeps:
        outcomes = {}
        for method in methods:
            if method in RAY_METHODS:
                outcomes[method] = run_ray(sweep, method)
            else:
                outcomes[method] = run_optuna(sweep, method, explain=args.explain)
        reference = outcomes["none"]
        cells, scores = [], {}
        for method in methods[1:]:
            o = outcomes[method]
            share, r = o.steps / reference.steps, regret(o.best, reference.best, sweep.mode)
            scores[method] = (share, r)
            summary[_group(sweep)][method].append((share, r))
            cells.append(f"{share:>6.1%} / {r:>6.2%}")
        floor = floor_share(sweep)
        floors[_group(sweep)].append(floor)
        print(f"{sweep.task[:40]:<40} {sweep.seed:>4} {floor:>6.1%} " + " ".join(f"{c:>15}" for c in cells), flush=True)
        if args.explain and "curvecast" in outcomes:
            explain(sweep, outcomes["curvecast"], reference.steps, kept[_group(sweep)])
        mine = "curvecast" if "curvecast" in scores else "curvecast_ray" if "curvecast_ray" in scores else None
        if mine is not None:
            share, r = scores[mine]
            said = []
            if share > 0.4 or r > 0.005:
                below = f"; no method can go under {floor:.1%} here" if floor > 0.4 else ""
                said.append(f"{share:.1%} of the steps at a regret of {r:.2%} (goal: 40% at 0.5%{below})")
            ahead = [f"{o} {scores[o][0]:.1%} at {scores[o][1]:.2%}" for o in INCUMBENTS
                     if o in scores and scores[o][1] <= r + 1e-12 and scores[o][0] <= share]  # fmt: skip
            if ahead:
                said.append("as little compute at no more regret: " + ", ".join(ahead))
            if said:
                misses.append(f"{sweep.task} seed {sweep.seed}: " + "; ".join(said))
    print(f"\n{'over the sweeps':<28} {'mean steps':>10} {'max regret':>10} {'sweeps over 0.5%':>17} "
          f"{'40% at 0.5%':>12}")  # fmt: skip
    for group, by_method in summary.items():
        over_floor = sum(f > 0.4 for f in floors[group])
        met = len(floors[group]) - over_floor
        print(f"{group + ' floor':<28} {sum(floors[group]) / len(floors[group]):>10.1%} {'-':>10} {'-':>17} "
              f"{met:>5} of {len(floors[group]):<3}")  # fmt: skip
        for method, rows in by_method.items():
            worst = max(r for _, r in rows)
            over = sum(r > 0.005 for _, r in rows)
            mean = sum(s for s, _ in rows) / len(rows)
            met = sum(s <= 0.4 and r <= 0.005 for s, r in rows)
            print(f"{group + ' ' + method:<28} {mean:>10.1%} {worst:>10.2%} {over:>10} of {len(rows):<3} "
                  f"{met:>5} of {len(rows):<3}")  # fmt: skip
    if args.explain:
        print("\nwhere curvecast's steps on trials not ending within 0.5% of the best went (mean share of the unpruned "
              "sweep), by the rule's reason for keeping them:")  # fmt: skip
        for group, shares in kept.items():
            count = len(floors[group])
            print(f"  {group}:")
            for why, share in sorted(shares.items(), key=lambda item: -item[1]):
                print(f"    {share / count:>6.1%}  {why}")
    print("\nwhere the goal is missed (at most 40% of the steps at a regret <= 0.5%, and less than every incumbent "
          "at no more regret):")  # fmt: skip
    print("\n".join(f"  {m}" for m in misses) or "  nowhere")
    if args.workers and "crossing" in args.tasks:
        print(f"\n{args.workers} worker threads on one SQLite storage, ForecastPruner, crossing seed {args.seeds[0]}:")
        sweep = crossing(args.seeds[0], args.trials)
        alone = run_optuna(sweep, "none")
        with tempfile.TemporaryDirectory() as folder:
            o = run_parallel(sweep, args.workers, Path(folder) / "sweep.db")
        print(
            f"  steps {o.steps / alone.steps:.1%}, regret {regret(o.best, alone.best, sweep.mode):.2%}, "
            f"{o.pruned} pruned, {o.lost} reports lost, {len(o.notes)} errors, {o.seconds:.0f} s"
        )
        for note in o.notes[:5]:
            print(f"  error: {note}")


if __name__ == "__main__":
    from results import recorded

    with recorded("sweeps"):
        main()
