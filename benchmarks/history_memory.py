"""RunHistory over a long run: memory and append cost, against keeping every point in Python lists.

    python benchmarks/history_memory.py [--steps 10000000]

Prints the points kept, the traced memory, the checkpoint state's size, the append cost per step, the cost of a
`series()` view for the forecaster, and how far the kept curve strays from the true one.
"""

from __future__ import annotations

import argparse
import pickle
import time
import tracemalloc

import numpy as np

from curvecast.history import RunHistory


def loss_at(steps: np.ndarray) -> np.ndarray:
    return 2.0 + 8.0 * (1.0 + steps / 1000.0) ** -0.4


def measure(steps: int, store) -> dict:
    tracemalloc.start()
    values = loss_at(np.arange(steps, dtype=np.float64)).tolist()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    store(values)
    seconds = time.perf_counter() - start
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "kept_bytes": current - before, "peak_bytes": peak - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000_000)
    args = parser.parse_args()

    history = RunHistory()

    def into_history(values: list[float]) -> None:
        append = history.append
        for step, value in enumerate(values):
            append("loss", step, value)

    lists: tuple[list[int], list[float]] = ([], [])

    def into_lists(values: list[float]) -> None:
        for step, value in enumerate(values):
            lists[0].append(step)
            lists[1].append(value)

    ours = measure(args.steps, into_history)
    base = measure(args.steps, into_lists)
    start = time.perf_counter()
    series = history.series("loss")
    view_ms = 1e3 * (time.perf_counter() - start)
    error = np.max(np.abs(series.values - loss_at(series.steps)) / loss_at(series.steps))
    state_mb = len(pickle.dumps(history.state_dict())) / 1e6

    print(f"{args.steps:,} steps of one series")
    print(f"{'':24}{'RunHistory':>14}{'plain lists':>14}{'ratio':>10}")
    print(f"{'points kept':24}{len(series):>14,}{len(lists[0]):>14,}{len(series) / len(lists[0]):>10.4f}")
    mb = 1e6
    print(f"{'memory kept (MB)':24}{ours['kept_bytes'] / mb:>14.1f}{base['kept_bytes'] / mb:>14.1f}"
          f"{ours['kept_bytes'] / base['kept_bytes']:>10.4f}")  # fmt: skip
    print(f"{'peak while appending':24}{ours['peak_bytes'] / mb:>14.1f}{base['peak_bytes'] / mb:>14.1f}"
          f"{ours['peak_bytes'] / base['peak_bytes']:>10.4f}")  # fmt: skip
    print(f"{'append (us/step)':24}{1e6 * ours['seconds'] / args.steps:>14.2f}"
          f"{1e6 * base['seconds'] / args.steps:>14.2f}{ours['seconds'] / base['seconds']:>10.2f}")  # fmt: skip
    print(f"checkpoint state: {state_mb:.2f} MB; series() view: {view_ms:.1f} ms; "
          f"max relative error of the kept curve: {error:.2e}")  # fmt: skip


if __name__ == "__main__":
    from results import recorded

    with recorded("history_memory"):
        main()
