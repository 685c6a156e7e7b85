"""Final-loss forecast accuracy of curvecast's Forecaster against baselines on the real curves in ../shared/data/curves.

For every non-diverged run and every prefix (10/25/50/75 % of the run), each method sees the training loss up to that
step, plus the run's full LR schedule where the CSV has one, and forecasts the loss at the last step. The truth is a
robust estimate of the smoothed loss at the last step: the last value for sparse evaluation curves, a straight-line
fit to the last 5 % of the points (5 to 200) for per-step noisy curves. Prints, per source, the median and p90
|relative error| of every method side by side, then the 80 % interval coverage and the refit cost.

    python benchmarks/forecast_accuracy.py [--curves DIR] [--only mng] [--no-baselines]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_baselines import BASELINES  # noqa: E402

from curvecast.forecasting import Forecaster  # noqa: E402

FRACTIONS = (0.10, 0.25, 0.50, 0.75)
DEFAULT_CURVES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "curves"


def load_runs(folder: Path, only: str | None = None) -> list[dict]:
    """Non-diverged runs with at least 8 finite training-loss points: steps, values, lrs (or None), truth."""
    runs = []
    for path in sorted(folder.glob("*.csv")):
        if path.name == "index.csv" or (only and not path.name.startswith(only)):
            continue
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("diverged") or meta.get("stability", {}).get("label") == "divergence":
            continue
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        step = np.array([float(r["step"]) for r in rows])
        loss = np.array([float(r["train_loss"]) if r["train_loss"] else np.nan for r in rows])
        lr = np.array([float(r["lr"]) if r.get("lr") else np.nan for r in rows])
        ok = np.isfinite(loss)
        if ok.sum() < 8:
            continue
        steps, values = step[ok], loss[ok]
        horizon = int(steps[-1])
        lrs = None
        has = np.isfinite(lr)
        if has.sum() >= 2:
            lrs = np.interp(np.arange(horizon + 1), step[has], lr[has])
        runs.append(
            {
                "id": path.stem,
                "source": path.stem.split("__")[0],
                "steps": steps,
                "values": values,
                "horizon": horizon,
                "lrs": lrs,
                "truth": truth(values),
            }
        )
    return runs


def truth(values: np.ndarray) -> float:
    """Smoothed loss at the last step: the last value of a sparse curve, a line through the last 5 % of a dense one."""
    if len(values) < 200:
        return float(values[-1])
    k = int(np.clip(len(values) // 20, 5, 200))
    x = np.arange(k, dtype=np.float64)
    return float(np.polyval(np.polyfit(x, values[-k:], 1), k - 1))


def evaluate(runs: list[dict], with_baselines: bool, cache: Path | None = None) -> list[dict]:
    """Forecast every run from every prefix; baseline forecasts are read from / written to ``cache`` when given."""
    stored = json.loads(cache.read_text()) if cache and cache.exists() else {}
    rows = []
    for k, run in enumerate(runs):
        print(f"  [{k + 1}/{len(runs)}] {run['id']}", file=sys.stderr)
        for frac in FRACTIONS:
            cut = frac * run["horizon"]
            m = run["steps"] <= cut
            if m.sum() < 5:
                continue
            t, y = run["steps"][m], run["values"][m]
            row = {"source": run["source"], "id": run["id"], "frac": frac, "truth": run["truth"]}
            t0 = time.perf_counter()
            f = Forecaster().fit(t, y, horizon=run["horizon"], lrs=run["lrs"])
            row["fit_ms"] = 1e3 * (time.perf_counter() - t0)
            row["curvecast"] = f.final if f.ok else float(np.mean(y[-5:]))
            lo, hi = f.interval(0.8) if f.ok else (np.nan, np.nan)
            row["covered"] = bool(lo <= run["truth"] <= hi)
            row["width"] = (hi - lo) / run["truth"]
            if with_baselines:
                for name, fn in BASELINES.items():
                    key = f"{run['id']}|{frac}|{name}"
                    if key not in stored:
                        try:
                            stored[key] = fn(t, y, run["horizon"], run["lrs"])
                        except Exception as exc:  # a baseline that crashes forecasts nan, the run goes on
                            print(f"  {name} failed on {run['id']} at {frac}: {exc!r}", file=sys.stderr)
                            stored[key] = np.nan
                    row[name] = stored[key]
            rows.append(row)
        if cache and with_baselines:
            cache.write_text(json.dumps(stored, default=float))
    return rows


def summarize(rows: list[dict], methods: list[str]) -> None:
    groups = sorted({r["source"] for r in rows}) + ["all"]
    head = "source     prefix   n " + "".join(f"{m:>17}" for m in methods) + "   cover80  width"
    print(head)
    print("-" * len(head))
    for g in groups:
        for frac in FRACTIONS:
            sel = [r for r in rows if r["frac"] == frac and (g == "all" or r["source"] == g)]
            if not sel:
                continue
            line = f"{g:<10} {frac:>5.0%} {len(sel):>4}"
            for m in methods:
                e = np.abs(np.array([r[m] for r in sel], dtype=float) / np.array([r["truth"] for r in sel]) - 1)
                e = np.where(np.isfinite(e), e, 1.0)  # a method that produced nothing counts as 100 % off
                line += f"   {100 * np.median(e):5.2f}% /{100 * np.quantile(e, 0.9):5.1f}%"
            cov = np.mean([r["covered"] for r in sel])
            line += f"   {100 * cov:5.0f}%  {100 * np.median([r['width'] for r in sel]):5.1f}%"
            print(line)
    print("(each cell: median / p90 |relative error| of the final-loss forecast)")


def timing(seed: int = 0) -> None:
    """Median refit cost for 10k- and 1M-point per-step histories with a WSD schedule."""
    rng = np.random.default_rng(seed)
    for n in (10_000, 1_000_000):
        horizon = 2 * n
        t = np.arange(1, n + 1, dtype=np.float64)
        y = 2.0 + 3.0 * t**-0.3 + rng.normal(0.0, 0.05, n)
        lrs = np.minimum(1.0, (horizon - np.arange(horizon + 1)) / (0.2 * horizon))
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            Forecaster().fit(t, y, horizon=horizon, lrs=lrs)
            times.append(time.perf_counter() - t0)
        print(f"refit on {n:>9,} points (horizon {horizon:,}, WSD lrs): median {1e3 * np.median(times):6.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=Path, default=DEFAULT_CURVES)
    ap.add_argument("--only", default=None, help="only runs whose file name starts with this (e.g. mng)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--save", type=Path, default=None, help="write the per-forecast rows as JSON")
    ap.add_argument("--cache", type=Path, default=None, help="JSON file that keeps baseline forecasts between runs")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args()
    runs = load_runs(args.curves, args.only)
    print(f"{len(runs)} runs ({sum(r['lrs'] is not None for r in runs)} with an LR schedule), diverged runs skipped")
    rows = evaluate(runs, with_baselines=not args.no_baselines, cache=args.cache)
    methods = ["curvecast"] + ([] if args.no_baselines else list(BASELINES))
    summarize(rows, methods)
    print(f"fit time on these runs: median {np.median([r['fit_ms'] for r in rows]):.1f} ms")
    if not args.no_timing:
        timing()
    if args.save:
        args.save.write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
