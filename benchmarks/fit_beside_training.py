"""What a live forecast fit costs the training steps that run beside it: in a thread of the training process (the
fit holds the GIL) against the forecast process (``curvecast/fit_process.py``), side by side in one run.

A small MLP trains on the CPU (one torch thread: the other core is free for the fit) while a real live fit (the
training loss of a cosine run at 500 steps, with its schedule) repeats back to back: nothing beside it, in a thread
of this process, then in the forecast process. The rounds rotate the three, and each figure is the median wall time
per step over the rounds, with its ratio to the steps trained alone in the same round.

    python benchmarks/fit_beside_training.py [--rounds 7] [--steps 300] [--width 512]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch
from torch import nn

from curvecast.fit_process import shared_fit_process
from curvecast.forecasting import Forecaster
from curvecast.forecasting.schedule import LRSchedule


def live_fit_inputs(steps: int = 500, horizon: int = 800) -> tuple[tuple, dict]:
    """A cosine run's noisy training loss up to ``steps`` and its planned LR to ``horizon``, as the live run passes
    them."""
    rng = np.random.default_rng(0)
    lrs = 1e-3 * 0.5 * (1.0 + np.cos(np.pi * np.arange(horizon + 1) / horizon))
    t = np.arange(1, steps + 1, dtype=np.float64)
    loss = (0.05 + 2.0 * t**-0.6) * np.exp(rng.normal(0.0, 0.08, t.size))
    return (t, loss), {"horizon": horizon, "lrs": LRSchedule(lrs), "counts": np.ones_like(t)}


class FitLoop:
    """Fits back to back until stopped, in a thread of this process or through the forecast process."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.fits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FitLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        args, kwargs = live_fit_inputs()
        child = shared_fit_process()
        while not self._stop.is_set():
            if self.where == "thread":
                Forecaster().fit(*args, **kwargs)
            else:
                child.call(Forecaster().fit, *args, **kwargs)
            self.fits += 1


def trainer(width: int):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(64, 64)
    y = x[:, :8].sum(1)

    def steps(n: int) -> float:
        """Wall seconds per step over ``n`` steps."""
        start = time.perf_counter()
        for _ in range(n):
            loss = nn.functional.mse_loss(net(x).squeeze(-1), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / n

    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = trainer(args.width)
    steps(50)
    shared_fit_process().call(Forecaster().fit, *live_fit_inputs()[0], **live_fit_inputs()[1])  # started, warm
    places = ["alone", "thread", "process"]
    ms: dict[str, list[float]] = {p: [] for p in places}
    ratio: dict[str, list[float]] = {p: [] for p in places}
    fits: dict[str, int] = dict.fromkeys(places, 0)
    for round_ in range(args.rounds):
        alone = steps(args.steps)
        for place in places[round_ % 3 :] + places[: round_ % 3]:
            if place == "alone":
                per_step = steps(args.steps)
            else:
                with FitLoop(place) as loop:
                    per_step = steps(args.steps)
                fits[place] += loop.fits
            ms[place].append(per_step * 1e3)
            ratio[place].append(per_step / alone)
    print(f"MLP width {args.width}, one torch thread, {args.rounds} rounds of {args.steps} steps; a live fit of 500 "
          "points with its cosine schedule repeating beside the steps")  # fmt: skip
    print(f"  {'fits':28s} {'ms per step':>12s} {'vs alone':>9s}   (min .. max)   fits done")
    names = {"alone": "none beside", "thread": "in a thread (GIL shared)", "process": "in the forecast process"}
    for place in places:
        r = ratio[place]
        print(f"  {names[place]:28s} {statistics.median(ms[place]):12.2f} {statistics.median(r):8.2f}x   "
              f"({min(r):.2f} .. {max(r):.2f})   {fits[place] or '-'}")  # fmt: skip


if __name__ == "__main__":
    from results import recorded

    with recorded("fit_beside_training"):
        main()
