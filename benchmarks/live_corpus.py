"""The healthy live Lightning runs of ``benchmarks/live_runs.py`` as forecasting curves for ``benchmarks/calibrate.py``.

Every run of the cache (``/tmp/curvecast_live_runs`` by default; trained there first when the cache lacks some of the
default set, as ``benchmarks/false_alarms.py`` does) gives:

- its training curve (source ``live``): the per-step training loss, ``mode="min"``; for the RL runs, whose loss is a
  REINFORCE surrogate that goes negative and is no loss that falls, the per-step batch return ``reward`` instead,
  ``mode="max"`` without bounds;
- its validation curves (source ``live-val``): ``val_loss`` (``mode="min"``), ``val_acc`` (``mode="max"``, bounds
  (0, 1)) and ``val_reward`` (``mode="max"``, no bounds), at their validation steps.

The truth (the value forecast) is the smoothed value at the last step: for curves of ``DENSE`` points or more (the
training curves; ``val_reward``, the return of 16 episodes every 5 steps; the validation of the long runs) a line
through the last 10 % of the points (``dense_truth``), else the last value, as for the wild logs.

The LR schedule is known (the ``lr`` column is the LR of every training step): every curve gets ``lrs`` of length
``horizon + 1``, the LR of steps 0..horizon, interpolated over gaps and held at its last value past the last training
step (a validation at step ``max_steps`` follows the last training step). The horizon is the curve's last step, and
the cross-validation group is the workload (``live-mlp_regression``, ...): one group holds a workload's training and
validation curves, which are not independent of each other.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_LIVE = Path("/tmp/curvecast_live_runs")  # live_runs.DEFAULT_CACHE, without importing torch to name it
DENSE = 40  # curves with this many points or more are noisy enough for their truth to be a smoothed tail
# (column, source, mode, bounds) of the curves taken from every run; the RL runs' loss is left out (see above).
CURVES = (
    ("loss", "live", "min", None),
    ("reward", "live", "max", None),
    ("val_loss", "live-val", "min", None),
    ("val_acc", "live-val", "max", (0.0, 1.0)),
    ("val_reward", "live-val", "max", None),
)


def ensure_live(cache: Path = DEFAULT_LIVE, train: bool = True) -> None:
    """Train the default set of live runs into ``cache`` where it lacks them (needs torch and Lightning; 5-8 minutes
    on a busy 2-core machine from an empty cache, about a second to check a full one)."""
    if not train:
        return
    try:
        import live_runs  # torch and Lightning: imported only to fill the cache
    except ImportError as error:
        print(f"(cannot train live runs here: {error}; using what {cache} holds)", file=sys.stderr)
        return
    live_runs.quiet_curvecast_console()
    live_runs.ensure_runs(live_runs.default_specs(), cache)


def load_live(cache: Path = DEFAULT_LIVE, train: bool = True, min_points: int = 8) -> list[dict]:
    """Every curve of every cached live run, in the run format of ``forecast_accuracy.load_runs``."""
    ensure_live(cache, train)
    runs = []
    for path in sorted(cache.glob("*.json")) if cache.is_dir() else []:
        csv_path = path.with_suffix(".csv")
        if not csv_path.is_file():
            continue
        spec = json.loads(path.read_text())["spec"]
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        columns = {c: _column(rows, c) for c in (rows[0] if rows else ()) if c != "step"}
        lr_steps, lr_values = columns.get("lr", (np.empty(0), np.empty(0)))
        for col, source, mode, bounds in CURVES:
            if col not in columns or (col == "loss" and spec["group"] == "rl_reward"):
                continue
            steps, values = columns[col]
            if len(values) < min_points or np.ptp(values) == 0:
                continue
            horizon = int(steps[-1])
            lrs = None
            if len(lr_values) >= 2:
                lrs = np.interp(np.arange(horizon + 1, dtype=np.float64), lr_steps, lr_values)
            final = dense_truth(values) if len(values) >= DENSE else float(values[-1])
            if mode == "min" and values.min() > 0 and final <= 0:  # a line through a tail falling to ~0 crossed 0
                final = float(np.median(values[-max(5, len(values) // 20) :]))
            if bounds is not None:
                final = float(np.clip(final, *bounds))
            runs.append(
                {
                    "id": f"live__{path.stem}_{col}",
                    "source": source,
                    "group": f"live-{spec['group']}",
                    "mode": mode,
                    "bounds": bounds,
                    "steps": steps,
                    "values": values,
                    "horizon": horizon,
                    "lrs": lrs,
                    "truth": final,
                }
            )
    return runs


def dense_truth(values: np.ndarray) -> float:
    """The smoothed value at the last step of a per-step curve: a straight line through its last 10 % (10 to 200
    points). The live curves are short (150-1200 steps) and noisy (batch sizes down to 1): the last value alone, or
    ``forecast_accuracy.truth``'s 5 %, would make the truth as noisy as one batch."""
    k = int(np.clip(len(values) // 10, 10, 200))
    if len(values) < k:
        return float(np.mean(values))
    x = np.arange(k, dtype=np.float64)
    return float(np.polyval(np.polyfit(x, values[-k:], 1), k - 1))


def _column(rows: list[dict], col: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(float(r["step"]), float(r[col])) for r in rows if r.get(col, "") != ""]
    pts = [(s, v) for s, v in pts if math.isfinite(s) and math.isfinite(v)]
    a = np.array(pts, dtype=np.float64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


if __name__ == "__main__":
    curves = load_live()
    for source in ("live", "live-val"):
        sel = [r for r in curves if r["source"] == source]
        print(f"{source}: {len(sel)} curves, groups {sorted({r['group'] for r in sel})}")
