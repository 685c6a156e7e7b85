"""Step-time overhead of curvecast's callbacks on a small model: each callback and the whole bundle, over none.

Every configuration runs a short ``Trainer.fit`` in turn, round after round (interleaved, so drifts in machine load
hit all of them alike); a configuration's step time is the median wall time between consecutive optimizer steps,
and its overhead is the median over rounds of its step time over the baseline's in the same round.

    python benchmarks/callback_overhead.py [--rounds 7] [--steps 60] [--threads 1] [--device cpu|cuda]

Targets: the bundle with its defaults <= 3 %, the per-example gradient noise scale <= 10 %.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
from torch import nn

from curvecast.callbacks import GradientNoiseScale, Throughput

VOCAB, SEQ, DIM, HIDDEN, BATCH = 1000, 32, 128, 512, 32


class SmallModel(pl.LightningModule):
    """Embedding -> LayerNorm -> MLP block on a sequence -> pooled classifier: every per-example layer kind."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.up = nn.Linear(DIM, HIDDEN)
        self.down = nn.Linear(HIDDEN, DIM)
        self.head = nn.Linear(DIM, 10)

    def training_step(self, batch, batch_idx):
        ids, y = batch
        h = self.emb(ids)
        h = h + self.down(nn.functional.gelu(self.up(self.norm(h))))
        return nn.functional.cross_entropy(self.head(h.mean(dim=1)), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)

    def train_dataloader(self):
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, VOCAB, (BATCH * 64, SEQ), generator=gen)
        data = torch.utils.data.TensorDataset(ids, torch.randint(0, 10, (BATCH * 64,), generator=gen))
        return torch.utils.data.DataLoader(data, batch_size=BATCH)


class StepClock(pl.Callback):
    """Time between consecutive optimizer steps (placed last, so every other callback's work is inside).

    ``clock="cpu"`` reads this process's CPU time: on a CPU shared with other jobs, wall time mostly measures how
    often the scheduler takes the core away; with one torch thread, CPU time is the work the step costs.
    """

    def __init__(self, clock: str) -> None:
        self.now = time.process_time if clock == "cpu" else time.perf_counter
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(self.now())


def _bundle():
    try:
        from curvecast import Curvecast
    except ImportError as error:
        return None, f"skipped: `from curvecast import Curvecast` failed ({error})"
    return Curvecast, ""


def configurations() -> dict[str, object]:
    """name -> a function returning the callbacks under test (None: the row is skipped, with a message)."""
    bundle, why = _bundle()
    configs: dict[str, object] = {
        "baseline": lambda: [],
        "GradientNoiseScale (per-example, every step)": lambda: [GradientNoiseScale(sample_every_n_steps=1)],
        "GradientNoiseScale (default: per-example, every 10th step)": lambda: [GradientNoiseScale()],
        "GradientNoiseScale (grad norm only: microbatch source, no accumulation)": lambda: [
            GradientNoiseScale(source="microbatch")
        ],
        "Throughput": lambda: [Throughput()],
        "Curvecast bundle": (lambda: [bundle()]) if bundle else why,
    }
    if bundle is not None:
        sensors = {type(s).__name__ for s in getattr(bundle(), "sensors", [])}
        if not {"GradientNoiseScale", "Throughput"} <= sensors:
            configs["Curvecast bundle + GradientNoiseScale + Throughput"] = lambda: [
                bundle(),
                GradientNoiseScale(),
                Throughput(),
            ]
    return configs


def step_time(callbacks: list, steps: int, device: str, clock_kind: str) -> float:
    clock = StepClock(clock_kind)
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=50,
        callbacks=[*callbacks, clock],
    )
    torch.manual_seed(0)
    trainer.fit(SmallModel())
    if device == "cuda":
        torch.cuda.synchronize()
    periods = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
    return statistics.median(periods[5:])  # the first steps warm up allocators and caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a busy machine)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--clock", default=None, choices=["cpu", "wall"], help="default: cpu on CPU, wall on CUDA")
    args = parser.parse_args()
    clock = args.clock or ("cpu" if args.device == "cpu" else "wall")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning_fabric"):
        import logging

        logging.getLogger(name).setLevel(logging.ERROR)

    configs = configurations()
    runnable = {name: make for name, make in configs.items() if callable(make)}
    ratios: dict[str, list[float]] = {name: [] for name in runnable if name != "baseline"}
    base_times: list[float] = []
    names = list(ratios)
    for round_ in range(args.rounds):
        base = step_time(runnable["baseline"](), args.steps, args.device, clock)
        base_times.append(base)
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotate the order
            ratios[name].append(step_time(runnable[name](), args.steps, args.device, clock) / base)

    print(f"model: {sum(p.numel() for p in SmallModel().parameters()):,} parameters, batch {BATCH} x {SEQ} tokens; "
          f"device {args.device}, {args.threads} thread(s), {clock} clock; {args.rounds} interleaved rounds of "
          f"{args.steps} steps")
    print(f"baseline step time (median): {statistics.median(base_times) * 1e3:.2f} ms")
    print(f"{'configuration':72s} {'step time / baseline':>22s}   (min .. max over rounds)")
    for name, make in configs.items():
        if name == "baseline":
            continue
        if not callable(make):
            print(f"{name:72s} {make}")
            continue
        r = ratios[name]
        print(f"{name:72s} {statistics.median(r):22.3f}   ({min(r):.3f} .. {max(r):.3f})")


if __name__ == "__main__":
    from results import recorded

    with recorded("callback_overhead"):
        main()
