"""Cost of reference runs against their length: reading ``Curvecast(references=DIR)``'s logs, and a forecast with them.

    python benchmarks/reference_cost.py [--runs 3] [--rows 3000] [--long 49e6] [--short 2e4] [--forecasts 9]

Writes ``--runs`` CSVLogger logs (a ``metrics.csv`` with ``epoch``, ``lr-AdamW``, ``step`` and ``train_loss`` columns,
``--rows`` rows each, a warmup-cosine LR) of two recipes that differ only in length: a long one reaching step
``--long`` (a long run logged sparsely) and a short one reaching step ``--short``. For each recipe it measures reading
the directory into references (``references_from_logs``, what ``Curvecast`` does at the start of each fit) and a
``Forecaster.fit`` of a live run of the recipe at 30 % of its steps, with its planned schedule and those references:
the peak of memory allocated during the call (tracemalloc, numpy's arrays included) in one pass, the wall time in
another, and the elements of the arrays the references keep. A forecast is also timed without references, as the
floor. Prints long / short ratios. Target: ratios near 1, the cost independent of the run length.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from curvecast.forecasting import Forecaster
from curvecast.forecasting.schedule import LRSchedule
from curvecast.logreaders.reference_runs import references_from_logs

WARMUP = 0.02  # of the run
FRACTION = 0.3  # of the run seen by the live forecast


def lr_of(steps: np.ndarray, horizon: int) -> np.ndarray:
    """Warmup over the first 2 % of the run, then a cosine to a tenth of the peak."""
    x = np.asarray(steps, dtype=np.float64) / horizon
    warm = np.minimum(x / WARMUP, 1.0)
    cosine = 0.1 + 0.45 * (1 + np.cos(np.pi * np.clip((x - WARMUP) / (1 - WARMUP), 0, 1)))
    return 1e-3 * np.where(x < WARMUP, warm, cosine)


def loss_of(steps: np.ndarray, horizon: int, seed: int, noise: float = 0.01) -> np.ndarray:
    """A power law in the fraction of the run with an annealing drop late in the cosine, and ``noise`` (relative)."""
    x = (np.asarray(steps, dtype=np.float64) + 1) / horizon
    level = 1.0 + 0.02 * seed
    clean = level * (2.0 + 0.8 * (x * 1e3) ** -0.3 - 0.15 * np.clip((x - 0.5) / 0.5, 0, 1) ** 2)
    return clean * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(x)))


def write_runs(root: Path, horizon: int, runs: int, rows: int) -> None:
    """``runs`` finished runs of ``horizon`` steps under ``root``, as Lightning's CSVLogger leaves them."""
    steps = np.unique(np.linspace(0, horizon, rows).round().astype(np.int64))
    for seed in range(runs):
        run = root / "recipe" / f"version_{seed}"
        run.mkdir(parents=True)
        lines = ["epoch,lr-AdamW,step,train_loss"]
        points = zip(steps, lr_of(steps, horizon), loss_of(steps, horizon, seed), strict=True)
        lines += [f"0,{lr:.8g},{s},{v:.8g}" for s, lr, v in points]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")


def kept_elements(references: list[Any]) -> int:
    """Elements of the arrays the references hold: their points, counts and LRs (knots, or one LR per step)."""
    total = 0
    for ref in references:
        total += ref.steps.size + ref.values.size
        counts = getattr(ref, "counts", None)
        total += counts.size if counts is not None else 0
        if isinstance(ref.lrs, np.ndarray):
            total += ref.lrs.size
        elif ref.lrs is not None:
            total += sum(part.size for part in ref.lrs.knots())
    return total


def peak_mb(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()``'s result and the peak of memory allocated during it, in MB."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 1e6


def seconds(call: Callable[[], Any], repeats: int) -> float:
    """The median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(root: Path, horizon: int, runs: int, rows: int, forecasts: int) -> dict[str, float]:
    """Reading ``root``'s runs, and forecasting the next seed of the recipe with them."""
    directory = root / "recipe"
    found, read_mb = peak_mb(lambda: references_from_logs(directory, "loss"))
    refs = found.references
    read_s = seconds(lambda: references_from_logs(directory, "loss"), 1)
    seen = np.unique(np.linspace(0, FRACTION * horizon, int(FRACTION * rows)).round())
    values = loss_of(seen, horizon, seed=runs)
    schedule = LRSchedule.from_function(lambda s: lr_of(s, horizon), horizon)
    forecaster = Forecaster()

    def forecast(references: list[Any] | None) -> Any:
        return forecaster.fit(seen, values, horizon, lrs=schedule, references=references)

    # The first forecast with a reference bins it, for the later ones: fresh references for each measure of it.
    fresh = [references_from_logs(directory, "loss").references for _ in range(2)]
    _, first_mb = peak_mb(lambda: forecast(fresh[0]))
    first_s = seconds(lambda: forecast(fresh[1]), 1)
    result = forecast(refs)
    _, fit_mb = peak_mb(lambda: forecast(refs))
    _, alone_mb = peak_mb(lambda: forecast(None))
    return {
        "refs": len(refs),
        "with_lr": sum(r.lrs is not None for r in refs),
        "elements": kept_elements(refs),
        "read_mb": read_mb,
        "read_s": read_s,
        "first_mb": first_mb,
        "first_s": first_s,
        "fit_mb": fit_mb,
        "fit_s": seconds(lambda: forecast(refs), forecasts),
        "alone_mb": alone_mb,
        "alone_s": seconds(lambda: forecast(None), forecasts),
        "reference_member": float("reference" in result.model),
        "final": result.final,
        "truth": float(loss_of(np.array([horizon]), horizon, seed=runs, noise=0.0)[0]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="reference runs of each recipe")
    parser.add_argument("--rows", type=int, default=3000, help="rows logged per run")
    parser.add_argument("--long", type=float, default=49e6, help="last step of the long recipe")
    parser.add_argument("--short", type=float, default=2e4, help="last step of the short recipe")
    parser.add_argument("--forecasts", type=int, default=9, help="forecasts timed (the median is shown)")
    args = parser.parse_args(argv)
    results = {}
    for name, horizon in (("short", int(args.short)), ("long", int(args.long))):
        with tempfile.TemporaryDirectory(prefix=f"reference_cost_{name}_") as tmp:
            write_runs(Path(tmp), horizon, args.runs, args.rows)
            results[name] = measure(Path(tmp), horizon, args.runs, args.rows, args.forecasts)
    short, long = results["short"], results["long"]
    print(f"{args.runs} reference runs of {args.rows} rows (CSVLogger, with an LR column) reaching step "
          f"{int(args.short):,} (short) or {int(args.long):,} (long); a live forecast at {FRACTION:.0%} of the run."
          "\n")  # fmt: skip
    print("| | short | long | long / short |")
    print("| --- | --- | --- | --- |")
    rows = [
        ("references read (with their LR)", "refs", "{:.0f}", None),
        ("array elements kept by the references", "elements", "{:,.0f}", "elements"),
        ("reading: peak memory allocated (MB)", "read_mb", "{:.2f}", "read_mb"),
        ("reading: wall time (s)", "read_s", "{:.3f}", "read_s"),
        ("first forecast with them: peak memory allocated (MB)", "first_mb", "{:.2f}", "first_mb"),
        ("first forecast with them: wall time (s)", "first_s", "{:.3f}", "first_s"),
        ("later forecast with them: peak memory allocated (MB)", "fit_mb", "{:.2f}", "fit_mb"),
        ("later forecast with them: wall time (s)", "fit_s", "{:.3f}", "fit_s"),
        ("forecast without references: peak memory (MB)", "alone_mb", "{:.2f}", "alone_mb"),
        ("forecast without references: wall time (s)", "alone_s", "{:.3f}", "alone_s"),
    ]
    for label, key, fmt, ratio in rows:
        shown = f"{fmt.format(short[key])} ({short['with_lr']:.0f})" if key == "refs" else fmt.format(short[key])
        shown_long = f"{fmt.format(long[key])} ({long['with_lr']:.0f})" if key == "refs" else fmt.format(long[key])
        cell = f"{long[ratio] / max(short[ratio], 1e-12):.2f}x" if ratio else ""
        print(f"| {label} | {shown} | {shown_long} | {cell} |")
    for name, r in results.items():
        member = "with" if r["reference_member"] else "without"
        print(f"\n{name}: forecast {r['final']:.4f} against a final loss of {r['truth']:.4f}, {member} the reference "
              "member in the ensemble", end="")  # fmt: skip
    print()


if __name__ == "__main__":
    from results import recorded

    with recorded("reference_cost"):
        main()
