"""CPU time of the live run's forecasts: each fit of a real Lightning run timed again, beside the same fits with the
schedule-aware family that crosses exponents with response shapes built as a dense design (as before 2026-12-07).

A small MLP (the one of ``small_step_overhead``) trains with a cosine schedule and ``Curvecast(background=False,
forecast_budget=None)``, so it forecasts every ``forecast_every`` steps inline; every ``Forecaster.fit`` call is kept
with its arguments and timed again ``--repeats`` times (CPU of this process; the median), first as shipped, then with
``CrossedDesign`` turned back into the (720, n, 3) array it stands for. The forecasts must agree to rounding.
Printed beside them: the share of a run the forecasts take at ``forecast_every`` steps of 2 and 6 ms (the default
``forecast_budget`` caps it at 10%).

    python benchmarks/fit_cost.py [--steps 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import numpy as np
import pytorch_lightning as pl
from small_step_overhead import MLP, loader

from curvecast import Curvecast
from curvecast.forecasting import Forecaster
from curvecast.forecasting import curves as curve_families

FORECAST_EVERY = 100


def record_fits(steps: int) -> list[tuple[Forecaster, tuple, dict]]:
    """Train the MLP with inline forecasts and return every ``Forecaster.fit`` call it made."""
    calls: list[tuple[Forecaster, tuple, dict]] = []
    fit = Forecaster.fit

    def recording(self, *args, **kwargs):
        calls.append((self, args, kwargs))
        return fit(self, *args, **kwargs)

    Forecaster.fit = recording
    try:
        bundle = Curvecast(background=False, forecast_budget=None, log_forecasts=False, forecast_every=FORECAST_EVERY)
        trainer = pl.Trainer(max_steps=steps, callbacks=[bundle], logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
        trainer.fit(MLP(32), loader(steps))
    finally:
        Forecaster.fit = fit
    return calls


def timed(calls: list, repeats: int) -> tuple[list[float], list]:
    """Median CPU milliseconds per fit over ``repeats`` passes, and the forecasts (final and 80% interval)."""
    rounds = []
    for _ in range(repeats):
        start = time.process_time()
        forecasts = [forecaster.fit(*args, **kwargs) for forecaster, args, kwargs in calls]
        rounds.append((time.process_time() - start) / len(calls) * 1e3)
    made = [(f.final, *f.interval(0.8)) if f.ok else None for f in forecasts]
    return rounds, made


def dense_shaped_columns(t, grid, schedule, s1_ref):
    """The crossed design of ``mpl_shaped_family`` built whole, as before ``CrossedDesign``."""
    crossed = shaped_columns(t, grid, schedule, s1_ref)
    return np.stack([crossed[g] for g in range(len(grid))])


shaped_columns = curve_families._mpl_shaped_columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("curvecast").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    calls = record_fits(args.steps)
    shipped, made = timed(calls, args.repeats)
    curve_families._mpl_shaped_columns = dense_shaped_columns
    try:
        dense, made_dense = timed(calls, args.repeats)
    finally:
        curve_families._mpl_shaped_columns = shaped_columns
    worst = max((max(abs(a - b) / abs(b) for a, b in zip(x, y, strict=True)) for x, y in zip(made, made_dense,
                 strict=True) if x and y), default=0.0)  # fmt: skip
    median, dense_median = statistics.median(shipped), statistics.median(dense)
    print(f"{len(calls)} fits of a {args.steps}-step run (MLP width 32, cosine schedule, a forecast every "
          f"{FORECAST_EVERY} steps), median of {args.repeats} passes, CPU ms per fit")  # fmt: skip
    print(f"  as shipped (CrossedDesign)          {median:7.1f} ms   ({min(shipped):.1f} .. {max(shipped):.1f})")
    print(f"  the crossed family as a dense array {dense_median:7.1f} ms   ({min(dense):.1f} .. {max(dense):.1f})"
          f"   {dense_median / median:.2f}x")  # fmt: skip
    print(f"  forecasts agree to {worst:.1e} (largest relative difference of a final or interval end)")
    for step_ms in (2.0, 6.0):
        share = median / (FORECAST_EVERY * step_ms)
        print(f"  at {step_ms:g} ms a step, a forecast every {FORECAST_EVERY} steps takes {share:.1%} of the run")


if __name__ == "__main__":
    from results import recorded

    with recorded("fit_cost"):
        main()
