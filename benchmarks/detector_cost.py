"""CPU time of the stability detectors per scored point, in total and per detector, as the live run scores them.

Each run is fed point by point to a :class:`~curvecast.live.stability_watch.StabilityWatch`, a step's points at a
time followed by ``score_waiting`` (what ``WatchScorer`` does with a batch of points on its worker thread):

- **real dense**: per-step training losses of the shared curves (``../shared/data/curves``, modded-nanogpt runs of
  3,200-6,200 steps, with their LR schedules), the loss path alone;
- **live-like**: seeded synthetic runs logged every batch, a power-law loss with multiplicative noise of 5-30%, its
  gradient norm and throughput, with a cosine schedule (the loss, the norm and the throughput paths of a live run).

The total is the median over ``--repeats`` interleaved passes of this thread's CPU time (``time.thread_time``), per
point scored (a step's loss, gradient norm and throughput are three points). The split by detector is the share of
each part in a ``cProfile`` pass (cumulative time of its update), applied to that total: the profiler's own cost
inflates every call alike, so shares hold where absolute profiled times would not. "medians" counts the calls of
``stats.median`` (and of ``sorted`` behind it) per point in the same pass.

    python benchmarks/detector_cost.py [--curves DIR] [--runs 4] [--steps 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import math
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from curvecast.live.stability_watch import StabilityWatch  # noqa: E402 - after the path fix, so the script runs anywhere
from curvecast.series import GRAD_NORM, SAMPLES_PER_SEC, TRAIN_LOSS  # noqa: E402

DEFAULT_CURVES = REPO.parent / "shared" / "data" / "curves"
DENSE_RUNS = ("mng__2024-10-10_Muon__eb5659d0-fb6", "mng__2024-11-03_UntieEmbed__d6b50d71-f41",
              "mng__2024-11-06_ShortcutsTweaks__042f9e87-07e")  # fmt: skip

# A step's points: (name, step, value) for each series logged at that step.
Step = list[tuple[str, int, float]]
Run = tuple[list[Step], list[float] | None]  # the steps and the planned LR of each step (None: unknown)

# The parts a point's CPU is split into: (label, the profiled functions whose cumulative time is the part's). The
# level (scale, noise, baseline, progress) comes first; the monitor's own precursors last; "routing" is the rest (the
# watch's pairing, the detectors' step checks and dispatch).
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("level (noise, baseline)", ("level.py:absorb",)),
    ("nonfinite", ("nonfinite.py:update",)),
    ("spike", ("spike.py:update",)),
    ("divergence: blow-up", ("blowup.py:update",)),
    ("divergence: sustained rise", ("climb.py:update@SustainedRiseRule",)),
    ("divergence: drift", ("climb.py:update@DriftRule",)),
    ("plateau", ("plateau.py:update",)),
    ("slowdown", ("slowdown.py:update",)),
    ("instability: precursors", ("instability.py:_precursors",)),
    ("instability: turn-up", ("turn_up.py:update",)),
)


def dense_runs(curves: Path, steps: int) -> list[Run]:
    """The shared curves' per-step training losses (the first ``steps`` of each) and their LR schedules."""
    runs = []
    for name in DENSE_RUNS:
        path = curves / f"{name}.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["train_loss"]][:steps]
        lr_rows = [(int(r["step"]), float(r["lr"])) for r in rows if r["lr"]]
        lrs = None
        if len(lr_rows) >= 2:
            s, v = zip(*lr_rows, strict=True)
            lrs = np.interp(np.arange(s[-1] + 1), s, v).tolist()
        runs.append(([[(TRAIN_LOSS, int(r["step"]), float(r["train_loss"]))] for r in rows], lrs))
    return runs


def live_like_runs(n: int, steps: int) -> list[Run]:
    """Seeded runs logged every batch: loss, gradient norm and throughput, with a warmup + cosine schedule."""
    runs = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        t = np.arange(steps)
        noise = 0.05 + 0.25 * seed / max(n - 1, 1)
        loss = (0.3 + 2.0 * (1 + t / 50.0) ** -0.7) * np.exp(noise * rng.standard_normal(steps))
        grad = (0.5 + 0.3 * t / steps) * np.exp(0.3 * rng.standard_normal(steps))
        speed = 1e4 * np.exp(0.05 * rng.standard_normal(steps))
        warm = steps // 20
        lrs = [1e-3 * min((s + 1) / warm, 0.5 * (1 + math.cos(math.pi * s / steps))) for s in range(steps)]
        points = [[(TRAIN_LOSS, s, float(a)), (GRAD_NORM, s, float(g)), (SAMPLES_PER_SEC, s, float(v))]
                  for s, a, g, v in zip(t.tolist(), loss, grad, speed, strict=True)]  # fmt: skip
        runs.append((points, lrs))
    return runs


def score(run: Run) -> StabilityWatch:
    """Feed a run as the live path does: each step's points, then ``score_waiting`` (a batch handed over)."""
    steps, lrs = run
    watch = StabilityWatch(TRAIN_LOSS, "min", pair_grad_norm=any(name == GRAD_NORM for name, _, _ in steps[0]))
    watch.set_schedule(lrs)
    for points in steps:
        for point in points:
            watch.feed(*point)
        watch.score_waiting()
        watch.collect()
    return watch


def points_of(runs: list[Run]) -> int:
    return sum(len(points) for steps, _ in runs for points in steps)


def cpu_us_per_point(runs: list[Run]) -> float:
    """This thread's CPU time for scoring every run once, per point (microseconds)."""
    start = time.thread_time()
    for run in runs:
        score(run)
    return (time.thread_time() - start) / points_of(runs) * 1e6


def profile_shares(runs: list[Run]) -> tuple[dict[str, float], float]:
    """Each part's share of a profiled pass (see ``PARTS``), and the calls of ``median`` per point."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [score(run) for run in runs])
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    total, medians = 0.0, 0
    for (file, line, func), (_, calls, _, cum, callers) in stats.items():
        key = f"{Path(file).name}:{func}"
        if key == "detector_cost.py:<lambda>":
            total = cum
        if key == "stats.py:median":
            medians = calls
        if key == "climb.py:update":  # two rules in one module: told apart by their line
            key += "@SustainedRiseRule" if line < _drift_line() else "@DriftRule"
        cumulative[key] = cumulative.get(key, 0.0) + cum
        del callers
    shares = {label: sum(cumulative.get(k, 0.0) for k in keys) / total for label, keys in PARTS}
    shares["routing, pairing, dispatch"] = 1.0 - sum(shares.values())
    return shares, medians / points_of(runs)


def _drift_line() -> int:
    from curvecast.forecasting.anomalies.climb import DriftRule

    return DriftRule.update.__code__.co_firstlineno


def measure(groups: dict[str, list[Run]], repeats: int) -> dict[str, tuple[float, float, dict[str, float], float]]:
    """Per group: the median and spread of CPU us per point over interleaved passes, the parts' shares, medians."""
    samples: dict[str, list[float]] = {name: [] for name in groups}
    for _ in range(repeats):
        for name, runs in groups.items():  # interleaved: a drift in the machine's load hits every group alike
            samples[name].append(cpu_us_per_point(runs))
    out = {}
    for name, runs in groups.items():
        shares, medians = profile_shares(runs)
        spread = (max(samples[name]) - min(samples[name])) / 2
        out[name] = (statistics.median(samples[name]), spread, shares, medians)
    return out


def table(results: dict[str, tuple[float, float, dict[str, float], float]], points: Callable[[str], int]) -> None:
    names = list(results)
    print(f"  {'CPU us per point':<30}" + "".join(f"{n:>22}" for n in names))
    print(f"  {'total':<30}" + "".join(f"{results[n][0]:>13.1f} +- {results[n][1]:<5.1f}" for n in names))
    for label in [label for label, _ in PARTS] + ["routing, pairing, dispatch"]:
        cells = [results[n][0] * results[n][2][label] for n in names]
        if max(cells) < 0.05:
            continue
        print(f"    {label:<28}" + "".join(f"{c:>13.1f}{'':9}" for c in cells))
    print(f"  {'medians per point':<30}" + "".join(f"{results[n][3]:>13.1f}{'':9}" for n in names))
    print(f"  {'points scored per pass':<30}" + "".join(f"{points(n):>13d}{'':9}" for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=Path, default=DEFAULT_CURVES, help=f"shared curves (default {DEFAULT_CURVES})")
    parser.add_argument("--runs", type=int, default=4, help="live-like runs (default 4)")
    parser.add_argument("--steps", type=int, default=3000, help="steps of each run (default 3000)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed passes (default 5)")
    args = parser.parse_args()
    groups = {"real dense": dense_runs(args.curves, args.steps), "live-like": live_like_runs(args.runs, args.steps)}
    groups = {name: runs for name, runs in groups.items() if runs}
    results = measure(groups, args.repeats)
    runs = ", ".join(f"{len(r)} {n}" for n, r in groups.items())
    print(f"StabilityWatch fed point by point, {args.steps} steps a run ({runs} runs), median of {args.repeats} "
          "interleaved passes, this thread's CPU; per detector: its cProfile share")  # fmt: skip
    table(results, lambda name: points_of(groups[name]))
    for step_ms in (2.0, 6.0):
        cost = results["live-like"][0] * 3 / 1e3 if "live-like" in results else math.nan
        print(f"  at {step_ms:g} ms a step, a live-like step's 3 points take {cost / step_ms:.1%} of it")


if __name__ == "__main__":
    from results import recorded

    with recorded("detector_cost"):
        main()
