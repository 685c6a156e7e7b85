"""Start-up cost of curvecast against the run length: the wait before the first training step, and its peak memory.

For each LR scheduler kind and run length, a process forked from this one (torch and Lightning are imported once;
the child's peak memory is its own) runs ``Trainer.fit`` on a tiny model and a cheap dataset without and then with
``Curvecast()``, and stops each fit after its first step. It measures the wall time from ``on_train_start`` to the
first ``on_train_batch_start`` (every callback's ``on_train_start`` lies in between, curvecast's schedule replay among
them) and how much the process's peak resident memory grew during the fit.

    python benchmarks/startup_cost.py [--kinds none,cosine,onecycle,step] [--lengths 1e3,1e5,1e7,5e7,epochs]
                                      [--timeout 600]

``epochs`` is Lightning's default ``max_epochs=1000`` with 50,000 batches per epoch and no ``max_steps`` (5e7 steps).
Target: the wait with curvecast independent of the run length (about a second of replay at most).
"""

from __future__ import annotations

import argparse
import time

_STARTED = time.perf_counter()  # before the imports: they take seconds

import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import warnings  # noqa: E402

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from curvecast import Curvecast  # noqa: E402

KINDS = ("none", "cosine", "onecycle", "step")
LENGTHS = ("1e3", "1e5", "1e7", "5e7", "epochs")
BATCHES_PER_EPOCH, EPOCHS = 50_000, 1000


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _measure(kind: str, length: str, with_curvecast: bool) -> dict:
    """One fit stopped after its first step: seconds from on_train_start to the first batch, peak RSS growth (MB)."""
    horizon = BATCHES_PER_EPOCH * EPOCHS if length == "epochs" else int(float(length))

    class Cheap(torch.utils.data.Dataset):
        """Every item the same: fetching a batch costs next to nothing."""

        def __init__(self, n: int) -> None:
            self.n, self.x, self.y = n, torch.zeros(4), torch.zeros(())

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int):
            return self.x, self.y

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            if kind == "none":
                return optimizer
            if kind == "cosine":
                cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s / horizon, 1)))
                scheduler = lr_scheduler.LambdaLR(optimizer, cosine)
            elif kind == "onecycle":
                scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=horizon)
            else:
                scheduler = lr_scheduler.StepLR(optimizer, step_size=max(horizon // 10, 1), gamma=0.5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    class FirstStep(pl.Callback):
        """Placed first: times the other callbacks' on_train_start, then stops the run after its first step."""

        def on_train_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.seconds = time.perf_counter() - self.t0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            trainer.should_stop = True

    if length == "epochs":
        data, limits = Cheap(BATCHES_PER_EPOCH), {"max_epochs": EPOCHS}
    else:
        data, limits = Cheap(64), {"max_steps": horizon}
    callbacks: list = [FirstStep()]
    curvecast = None
    if with_curvecast:
        curvecast = Curvecast(tensorboard=False)
        callbacks.append(curvecast)
    trainer = pl.Trainer(
        **limits,
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    before = _max_rss_mb()
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=1))
    result = {"seconds": callbacks[0].seconds, "peak_mb": max(_max_rss_mb() - before, 0.0)}
    if curvecast is not None:
        planned = curvecast.lr_capture.planned
        result["known"] = bool(planned is not None and planned.known)
        result["replayed"] = getattr(planned, "replayed_steps", None)
        result["jumps"] = getattr(planned, "jump_evaluations", None)
    return result


def _child(kind: str, length: str, results) -> None:
    warnings.simplefilter("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    _measure(kind, "1e3", False)  # the first fit of a process pays one-off costs: not the run length's
    results.send({"without": _measure(kind, length, False), "with": _measure(kind, length, True)})


def _run(kind: str, length: str, timeout: float) -> dict | None:
    """Measure in a forked child: no second import of torch (seconds each), and a peak RSS of its own."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(kind, length, send))
    child.start()
    result = receive.recv() if receive.poll(timeout) else None
    child.join(5.0)
    if child.is_alive():
        child.kill()
        child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--lengths", default=",".join(LENGTHS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per (kind, length) measurement")
    args = parser.parse_args()
    header = (
        f"{'scheduler':<9} {'run length':<18} {'wait w/o (s)':>12} {'wait with (s)':>13} {'extra (s)':>9} "
        f"{'peak w/o (MB)':>13} {'peak with (MB)':>14}  schedule"
    )
    print(header)
    print("-" * len(header))
    for kind in args.kinds.split(","):
        for length in args.lengths.split(","):
            label = f"{EPOCHS} ep x {BATCHES_PER_EPOCH // 1000}k" if length == "epochs" else f"max_steps {length}"
            r = _run(kind, length, args.timeout)
            if r is None:
                print(f"{kind:<9} {label:<18} {'(failed or over ' + str(int(args.timeout)) + ' s)':>40}", flush=True)
                continue
            wo, w = r["without"], r["with"]
            status = "known" if w.get("known") else "unknown"
            if w.get("replayed") is not None:
                status += f" ({w['replayed']:,} steps replayed, {w['jumps']:,} jumps)"
            print(
                f"{kind:<9} {label:<18} {wo['seconds']:>12.3f} {w['seconds']:>13.3f} "
                f"{w['seconds'] - wo['seconds']:>9.3f} "
                f"{wo['peak_mb']:>13.1f} {w['peak_mb']:>14.1f}  {status}",
                flush=True,
            )
    print(f"\n(total {time.perf_counter() - _STARTED:.0f} s; peak = growth of the process's peak RSS during the fit)")


if __name__ == "__main__":
    from results import recorded

    with recorded("startup_cost"):
        main()
