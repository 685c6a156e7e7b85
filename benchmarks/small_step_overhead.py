"""Overhead of curvecast on small, fast CPU steps, side by side with Lightning's own monitors, in one run.

Each step size (about 2, 6 and 20 ms: an MLP whose width is calibrated at start) trains with no monitoring callback,
with Lightning's ``LearningRateMonitor`` + ``ThroughputMonitor``, with ``Curvecast()`` (defaults) and with
``Curvecast(forecast_every=10)`` and the same with its fits in a thread of the training process (as they ran before
the forecast process), every configuration with the same ``TensorBoardLogger``. Configurations run in turn,
round after round (interleaved, so drifts in machine load hit all of them alike). Two figures per configuration, as
the median over rounds of its time over the unmonitored run's in the same round:

- steady state: wall time from step 50 to the last step (forecasts, detectors and TensorBoard writes included; the
  one-off start-up and the end-of-training report left out);
- whole fit: ``trainer.fit`` from call to return.

    python benchmarks/small_step_overhead.py [--rounds 5] [--steps 400] [--targets 2 6 20] [--clock cpu|wall]

``--clock cpu`` (the default) reads this process's CPU time, every thread's, plus the forecast process's (the child
that runs curvecast's fits, read from ``/proc``): on a machine shared with other jobs, wall time mostly measures how
often the scheduler takes the cores away.

A third, stabler figure: the CPU time of the training thread inside curvecast's hooks, per step (``thread_time``
around each of the bundle's Lightning hooks, less the clock's own cost, read around a hook the bundle leaves empty in
the same fit, printed beside it: curvecast's worker threads, for forecasts, detectors and TensorBoard writes, and
Lightning's own hook dispatch left out; the steady-state figure counts all of them).

Goals: <= 1.15x at 2 ms, <= 1.05x at 6 ms (steady state, defaults); under 0.1 ms per step inside the hooks.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ThroughputMonitor
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn

from curvecast import Curvecast
from curvecast.fit_process import shared_fit_process
from curvecast.live.runner import ForecastRunner

FEATURES, BATCH, WARM = 64, 64, 50


class MLP(pl.LightningModule):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, 1))  # fmt: skip

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}


def loader(steps: int) -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH * 64, FEATURES, generator=gen)
    data = torch.utils.data.TensorDataset(x, x[:, :8].sum(1))
    return torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True, generator=gen)


class Stopwatch(pl.Callback):
    """Wall time at step ``WARM`` and at the last step (placed last: every other callback's work is inside)."""

    clock = staticmethod(time.perf_counter)

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == WARM:
            self.marks["warm"] = self.clock()
        if trainer.global_step == trainer.max_steps:
            self.marks["last"] = self.clock()


def cpu_with_fits() -> float:
    """CPU seconds of this process and of its forecast process so far: a fit moved to the child still counts."""
    pid = shared_fit_process().pid
    try:
        with open(f"/proc/{pid}/stat") as stat:  # utime and stime, in clock ticks, after the command's ")"
            fields = stat.read().rsplit(")", 1)[1].split()
        child = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):  # no child yet, or gone
        child = 0.0
    return time.process_time() + child


HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
         "on_train_batch_end", "on_validation_end")  # fmt: skip
# A hook the bundle leaves to Lightning's no-op (no sensor of its defaults acts there), timed in the same fit: its
# figure is the clock's own cost in the run's conditions.
EMPTY_HOOK = "on_before_zero_grad"


class HookClock:
    """The training thread's CPU time inside a callback's per-step hooks (its instance methods wrapped).

    ``thread_time`` is a system call, and part of its own cost lands inside every interval it times: 2-3 us a call
    run cold between a training step's kernels, where a warm loop of empty calls gives 0.3 us. :meth:`net_seconds`
    takes off, per call, what the same clock reads around ``EMPTY_HOOK``, an empty hook of the same fit.
    """

    def __init__(self, callback: pl.Callback) -> None:
        if getattr(type(callback), EMPTY_HOOK) is not getattr(pl.Callback, EMPTY_HOOK) or EMPTY_HOOK in vars(callback):
            raise ValueError(f"{type(callback).__name__} acts in {EMPTY_HOOK}: it cannot time the clock")
        self.seconds, self.calls = 0.0, 0
        self.empty_seconds, self.empty_calls = 0.0, 0
        for name in HOOKS:
            setattr(callback, name, self._timed(getattr(callback, name)))
        setattr(callback, EMPTY_HOOK, self._timed(getattr(callback, EMPTY_HOOK), empty=True))

    def _timed(self, hook, empty: bool = False):
        def timed(*args, **kwargs):
            start = time.thread_time()
            try:
                return hook(*args, **kwargs)
            finally:
                if empty:
                    self.empty_seconds += time.thread_time() - start
                    self.empty_calls += 1
                else:
                    self.seconds += time.thread_time() - start
                    self.calls += 1

        return timed

    def clock_seconds(self) -> float:
        """The clock's own cost per timed call, as read around the empty hook."""
        return self.empty_seconds / self.empty_calls if self.empty_calls else 0.0

    def net_seconds(self) -> float:
        """The seconds inside the hooks, less what the clock itself added to them."""
        return self.seconds - self.calls * self.clock_seconds()


HOOK_CLOCKS: list[HookClock] = []  # one per timed Curvecast of the current fit


class FitsInThread(pl.Callback):
    """For the duration of one fit, curvecast's forecasts are fitted in its worker thread, as before the forecast
    process (``ForecastRunner.out_of_process``): what a fit costs the training process when it shares its GIL."""

    def on_fit_start(self, trainer, pl_module):
        ForecastRunner.out_of_process = False

    def on_fit_end(self, trainer, pl_module):
        ForecastRunner.out_of_process = True


def timed_curvecast(**kwargs) -> list[pl.Callback]:
    bundle = Curvecast(**kwargs)
    HOOK_CLOCKS.append(HookClock(bundle))
    return [bundle]


def configurations() -> dict[str, object]:
    return {
        "none": lambda: [],
        "Lightning LearningRateMonitor + ThroughputMonitor": lambda: [
            LearningRateMonitor(logging_interval="step"),
            ThroughputMonitor(batch_size_fn=lambda batch: batch[0].shape[0]),
        ],
        "Curvecast() (defaults)": lambda: timed_curvecast(),
        "Curvecast(forecast_every=10)": lambda: timed_curvecast(forecast_every=10),
        "Curvecast(forecast_every=10), fits in a thread": lambda: [*timed_curvecast(forecast_every=10), FitsInThread()],
    }


def fit(width: int, callbacks: list, steps: int, logdir: str) -> tuple[float, float]:
    """Seconds per step in the steady state, and of the whole fit."""
    watch = Stopwatch()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=TensorBoardLogger(logdir), enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0, callbacks=[*callbacks, watch],
    )  # fmt: skip
    torch.manual_seed(0)
    start = time.perf_counter()
    trainer.fit(MLP(width), loader(steps))
    whole = time.perf_counter() - start
    return (watch.marks["last"] - watch.marks["warm"]) / (steps - WARM), whole


def calibrate(target_ms: float, logdir: str) -> tuple[int, float]:
    """The MLP width whose plain step takes about ``target_ms``."""
    width, best = 32, None
    for candidate in (32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048):
        ms = fit(candidate, [], 120, logdir)[0] * 1e3
        if best is None or abs(ms - target_ms) < abs(best - target_ms):
            width, best = candidate, ms
        if ms > target_ms:
            break
    return width, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--targets", type=float, nargs="+", default=[2.0, 6.0, 20.0], help="step times, ms")
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"])
    args = parser.parse_args()
    Stopwatch.clock = staticmethod(cpu_with_fits if args.clock == "cpu" else time.perf_counter)
    torch.set_num_threads(1)  # one thread is the steadiest on a shared machine, and small steps are what is measured
    warnings.filterwarnings("ignore")
    # Lightning sets its own loggers to INFO: each is quietened by name, a parent's level would not reach them.
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric", "curvecast"):
        logging.getLogger(name).setLevel(logging.ERROR)
    configs = configurations()
    with tempfile.TemporaryDirectory() as logdir:
        for target in args.targets:
            width, ms = calibrate(target, logdir)
            steady = {name: [] for name in configs if name != "none"}
            whole = {name: [] for name in steady}
            hooks = {name: [] for name in steady}
            base_ms, clock_us = [], []
            names = list(steady)
            for round_ in range(args.rounds):
                base = fit(width, [], args.steps, logdir)
                base_ms.append(base[0] * 1e3)
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotate the order
                    HOOK_CLOCKS.clear()
                    run = fit(width, configs[name](), args.steps, logdir)
                    steady[name].append(run[0] / base[0])
                    if HOOK_CLOCKS:
                        hooks[name].append(HOOK_CLOCKS[0].net_seconds() / args.steps * 1e3)
                        clock_us.append(HOOK_CLOCKS[0].clock_seconds() * 1e6)
                    whole[name].append(run[1] / base[1])
            print(f"\nstep ~{target:g} ms (MLP width {width}; unmonitored step {statistics.median(base_ms):.2f} ms, "
                  f"{args.rounds} rounds of {args.steps} steps, {args.clock} clock)")  # fmt: skip
            print(f"  {'configuration':52s} {'steady state':>14s} {'whole fit':>10s} {'in hooks':>14s}"
                  "   (steady min .. max)")  # fmt: skip
            for name in names:
                s, w = steady[name], whole[name]
                in_hooks = f"{statistics.median(hooks[name]):.3f} ms/step" if hooks[name] else "-"
                print(f"  {name:52s} {statistics.median(s):13.3f}x {statistics.median(w):9.3f}x {in_hooks:>14s}   "
                      f"({min(s):.3f} .. {max(s):.3f})")  # fmt: skip
            print(f"  (in hooks: less the clock's own {statistics.median(clock_us):.1f} us per timed call, read around "
                  f"an empty hook of the same fits)")  # fmt: skip


if __name__ == "__main__":
    from results import recorded

    with recorded("small_step_overhead"):
        main()
