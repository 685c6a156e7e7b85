"""Final-loss forecast accuracy of curvecast's Forecaster against baselines on the real curves in ../shared/data/curves.

For every non-diverged run and every prefix (10/25/50/75 % of the run), each method sees the training loss up to that
step, plus the run's full LR schedule where the CSV has one, and forecasts the loss at the last step. The truth is a
robust estimate of the smoothed loss at the last step: the last value for sparse evaluation curves, a straight-line
fit to the last 5 % of the points (5 to 200) for per-step noisy curves. Prints, per source, the median and p90
|relative error| of every method side by side, then the 80 % interval coverage and the refit cost.

    python benchmarks/forecast_accuracy.py [--curves DIR] [--only mng] [--no-baselines]
    python benchmarks/forecast_accuracy.py --references   # leave-one-run-out gain from reference runs

``load_wild`` reads the validation curves of the Lightning logs in ../shared/data/wild, and ``group_of`` /
``recipe_of`` name a run's cross-validation group and recipe, for ``benchmarks/calibrate.py``.
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
from curvecast.forecasting.references import Reference  # noqa: E402

FRACTIONS = (0.10, 0.25, 0.50, 0.75)
DEFAULT_CURVES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "curves"
DEFAULT_WILD = DEFAULT_CURVES.parent / "wild"
# AlgoPerf workloads, each one cross-validation group across frameworks and variants (ogbg_model_size is ogbg).
WORKLOADS = (
    "criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit", "librispeech_conformer", "librispeech_deepspeech",
    "ogbg", "wmt",
)  # fmt: skip


def group_of(run_id: str) -> str:
    """The cross-validation group of a run: its source, and for AlgoPerf its workload."""
    source = run_id.split("__")[0]
    if source == "algoperf":
        return "algoperf:" + next((w for w in WORKLOADS if f"_{w}_" in run_id), "other")
    return source


def recipe_of(run_id: str) -> str:
    """Runs of one recipe: AlgoPerf trials of one submission, study and workload; modded-nanogpt runs of one record."""
    if run_id.startswith("algoperf__"):
        return run_id.rsplit("_t", 1)[0]
    return run_id.split("__")[1] if run_id.count("__") >= 2 else run_id


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
                "group": group_of(path.stem),
                "mode": "min",
                "bounds": None,
                "steps": steps,
                "values": values,
                "horizon": horizon,
                "lrs": lrs,
                "truth": truth(values),
            }
        )
    return runs


def load_wild(folder: Path, min_points: int = 8) -> list[dict]:
    """Validation curves of Lightning CSVLogger logs: one loss and one accuracy per log where present.

    Rows with the metric are kept by step (the last row of a repeated step), up to the first step that goes back (a
    second ``fit`` appended to the same file). Accuracy is ``mode="max"`` with bounds (0, 1), or (0, 100) in percent.
    """
    runs = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="") as fh:
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh)]
        if not rows:
            continue
        names = list(rows[0])
        x_name = "step" if "step" in names else "epoch" if "epoch" in names else None
        if x_name is None:
            continue
        for kind in ("loss", "acc"):
            col = _wild_column(names, kind)
            if col is None:
                continue
            steps, values = _wild_series(rows, x_name, col)
            if len(values) < min_points or np.ptp(values) == 0:
                continue
            bounds = None
            if kind == "acc":
                if values.min() < 0 or values.max() > 100:
                    continue
                bounds = (0.0, 1.0) if values.max() <= 1.0 else (0.0, 100.0)
            runs.append(
                {
                    "id": f"wild__{path.stem}_{col}",
                    "source": f"wild-{kind}",
                    "group": "wild",
                    "mode": "min" if kind == "loss" else "max",
                    "bounds": bounds,
                    "steps": steps,
                    "values": values,
                    "horizon": int(steps[-1]),
                    "lrs": None,
                    "truth": float(values[-1]),
                }
            )
    return runs


def _wild_column(names: list[str], kind: str) -> str | None:
    """The validation column of ``kind`` ("loss" or "acc"): per-epoch or plain names before per-step ones."""
    found = [
        n
        for n in names
        if n.lower().startswith(("val", "valid")) and kind in n.lower() and not n.lower().endswith("_step")
    ]
    return min(found, key=len) if found else None


def _wild_series(rows: list[dict], x_name: str, col: str) -> tuple[np.ndarray, np.ndarray]:
    by_step: dict[float, float] = {}
    last = -np.inf
    for r in rows:
        try:
            x, v = float(r[x_name]), float(r[col])
        except (KeyError, ValueError):
            continue
        if not (np.isfinite(x) and np.isfinite(v)):
            continue
        if x < last:
            break
        by_step[x] = v
        last = x
    steps = np.array(sorted(by_step), dtype=np.float64)
    return steps, np.array([by_step[x] for x in steps.tolist()], dtype=np.float64)


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
    """Median refit cost for 10k- and 1M-point per-step histories, half-way to the horizon: under a WSD schedule whose
    decay is still ahead, under a cosine half done (the decay seen: the prior-free and shaped MPL members join), at a
    constant planned LR (Domhan's constant-LR families beside the MPL), and without a schedule."""
    rng = np.random.default_rng(seed)
    for n in (10_000, 1_000_000):
        horizon = 2 * n
        t = np.arange(1, n + 1, dtype=np.float64)
        y = 2.0 + 3.0 * t**-0.3 + rng.normal(0.0, 0.05, n)
        steps = np.arange(horizon + 1)
        schedules = {
            "WSD lrs, decay ahead": np.minimum(1.0, (horizon - steps) / (0.2 * horizon)),
            "cosine lrs, half done": 0.5 * (1.0 + np.cos(np.pi * steps / horizon)),
            "constant lrs": np.full(horizon + 1, 1e-3),
            "no lrs": None,
        }
        for name, lrs in schedules.items():
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                Forecaster().fit(t, y, horizon=horizon, lrs=lrs)
                times.append(time.perf_counter() - t0)
            print(f"refit on {n:>9,} points (horizon {horizon:,}, {name}): median {1e3 * np.median(times):6.1f} ms")


def reference_gain(runs: list[dict]) -> None:
    """Leave one run out within each recipe of two or more runs: forecasts with the others as references and without."""
    by_recipe: dict[str, list[dict]] = {}
    for run in runs:
        by_recipe.setdefault(recipe_of(run["id"]), []).append(run)
    rows = []
    for members in by_recipe.values():
        if len(members) < 2:
            continue
        for run in members:
            refs = [Reference(r["steps"], r["values"], r["lrs"]) for r in members if r is not run]
            for frac in FRACTIONS:
                m = run["steps"] <= frac * run["horizon"]
                if m.sum() < 5:
                    continue
                t, y = run["steps"][m], run["values"][m]
                row = {"source": run["source"], "frac": frac}
                for name, given in (("alone", None), ("references", refs)):
                    f = Forecaster().fit(t, y, horizon=run["horizon"], lrs=run["lrs"], references=given)
                    final = f.final if f.ok else float(np.mean(y[-5:]))
                    row[name] = abs(final / run["truth"] - 1.0)
                    lo, hi = f.interval(0.8) if f.ok else (np.nan, np.nan)
                    row[name + "_cov"] = bool(lo <= run["truth"] <= hi)
                rows.append(row)
    print("\nleave-one-run-out within recipes (median |relative error|, 80 % coverage)")
    print("source     prefix    n      alone  references   cover alone/refs")
    for g in sorted({r["source"] for r in rows}) + ["all"]:
        for frac in FRACTIONS:
            sel = [r for r in rows if r["frac"] == frac and g in ("all", r["source"])]
            if sel:
                a, b = (100 * np.median([r[k] for r in sel]) for k in ("alone", "references"))
                ca, cb = (100 * np.mean([r[k] for r in sel]) for k in ("alone_cov", "references_cov"))
                print(f"{g:<10} {frac:>5.0%} {len(sel):>4}   {a:7.2f}%   {b:7.2f}%      {ca:4.0f}% / {cb:4.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=Path, default=DEFAULT_CURVES)
    ap.add_argument("--only", default=None, help="only runs whose file name starts with this (e.g. mng)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--save", type=Path, default=None, help="write the per-forecast rows as JSON")
    ap.add_argument("--cache", type=Path, default=None, help="JSON file that keeps baseline forecasts between runs")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--references", action="store_true", help="only the leave-one-run-out reference-run benchmark")
    args = ap.parse_args()
    runs = load_runs(args.curves, args.only)
    if args.references:
        reference_gain(runs)
        return
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
    from results import recorded

    with recorded("forecast_accuracy.references" if "--references" in sys.argv else "forecast_accuracy"):
        main()
