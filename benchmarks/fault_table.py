"""Faults a live run meets, tried on real Lightning runs: does curvecast crash the run, hang it, lose its data or stop
it wrongly?

    python benchmarks/fault_table.py [--only NAME] [--timeout 120]

Each case runs in its own process (a hang is a timeout, a crash is an exception out of ``trainer.fit`` or a dead
process) on a tiny CPU model whose loss at each step is known in advance. The cases: a monitor logged from a later
step, a metric logged on some steps only, a nearly full disk, a checkpoint whose curvecast state is damaged in each
of ten ways (then resumed on a run that diverges: the divergence must still stop it), a resume with another monitor, a
fit that never returns at the end of training, a divergence that must stop the run at its own step, references of
49M-step runs, arguments that cannot work, and healthy runs that must never be stopped. It prints one row per case
and the totals; a case is ``ok`` only when the run ended as it should, with its data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.callbacks import ModelCheckpoint  # noqa: E402
from pytorch_lightning.loggers import TensorBoardLogger  # noqa: E402

from curvecast import Curvecast  # noqa: E402
from curvecast._lightning import CPU_HOST_STEPS  # noqa: E402
from curvecast.forecasting import Forecaster  # noqa: E402
from curvecast.integrations import StopReason  # noqa: E402

STEPS = 300
DIVERGES_AT = 220  # the diverging runs climb from here on


class Curve(pl.LightningModule):
    """The loss at step t is a power law with a little noise; from ``diverge_at`` on it climbs steadily. Optionally
    logs ``train_acc`` every ``sparse`` steps and ``val_acc`` from step ``val_from`` on."""

    def __init__(self, diverge_at: int | None = None, sparse: int | None = None, val_from: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.diverge_at, self.sparse, self.val_from = diverge_at, sparse, val_from
        self.noise = np.random.default_rng(0).normal(0.0, 0.01, 10_000)

    def value(self, t: int) -> float:
        loss = 2.0 + 3.0 * (1 + t / 10) ** -0.7 + self.noise[t % len(self.noise)]
        if self.diverge_at is not None and t >= self.diverge_at:
            loss += 0.05 * (t - self.diverge_at)
        return loss

    def training_step(self, batch, batch_idx):
        t = self.global_step
        if self.sparse and t % self.sparse == 0:
            self.log("train_acc", 0.5 + t / 1000)
        return self.value(t) + 0.0 * self.layer(batch).sum()

    def validation_step(self, batch, batch_idx):
        if self.val_from is not None and self.global_step >= self.val_from:
            self.log("val_acc", 0.5 + self.global_step / 1000)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(4 * STEPS, 2), batch_size=2)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(4, 2), batch_size=2)


def _trainer(root: Path, callbacks: list, max_steps: int = STEPS, logger: bool = False, **kwargs) -> pl.Trainer:
    logger_ = TensorBoardLogger(root, name="run", version="v") if logger else False
    return pl.Trainer(
        default_root_dir=root, max_steps=max_steps, callbacks=callbacks, logger=logger_, accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks), **kwargs,
    )  # fmt: skip


def _bundle(**kwargs) -> Curvecast:
    return Curvecast(**{"forecast_every": 20, "background": False, "forecast_budget": None, **kwargs})


# -- the cases: each returns (outcome, detail); outcome is "ok", "data lost" or "wrong stop" ------------------------


def case_late_monitor(root: Path) -> tuple[str, str]:
    bundle = _bundle(monitor="val_acc")
    trainer = _trainer(root, [bundle], val_check_interval=50)
    trainer.fit(Curve(val_from=150))
    steps = bundle.history.series("val_acc").steps.tolist() if "val_acc" in bundle.history else []
    if steps != [150, 200, 250, 300]:
        return "data lost", f"val_acc recorded at {steps}"
    return "ok", f"waited; val_acc recorded at {steps}, ran {trainer.global_step} steps"


def case_sparse_metric(root: Path) -> tuple[str, str]:
    bundle = _bundle(monitor="train_acc")
    _trainer(root, [bundle]).fit(Curve(sparse=6))
    points = bundle.history.num_points("train_acc")
    return ("ok" if points == STEPS // 6 else "data lost"), f"{points} points for {STEPS // 6} logged"


def case_low_disk(root: Path) -> tuple[str, str]:
    usage, real = namedtuple("usage", "total used free"), shutil.disk_usage
    shutil.disk_usage = lambda path: usage(*real(path)[:2], 1 << 20)  # 1 MiB free, as the disk reports it
    try:
        trainer = _trainer(root, [_bundle()], logger=True)
        trainer.fit(Curve())
    finally:
        shutil.disk_usage = real
    written = sum(f.stat().st_size for f in (root / "run" / "v").rglob("*") if f.is_file())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(root / "run" / "v")).Reload().Tags()
    ours = [t for t in tags["scalars"] + tags["tensors"] if t.startswith("curvecast")]
    return ("ok" if not ours else "wrong stop"), f"{written} bytes in the log dir, {len(ours)} curvecast tags"


DAMAGES = {
    "inf loss_spike_n": ("watch/instability/loss_spike_n", math.inf),
    "inf n": ("watch/instability/n", math.inf),
    "inf up_run": ("watch/instability/up_run", math.inf),
    "inf throughput total": ("throughput/totals/steps", math.inf),
    "inf GNS state": ("gradient_noise/estimator/state", [math.inf] * 4),
    "inf tab last_events_step": ("tensorboard/tab/last_events_step", math.inf),
    "None state": ("", None),
    "None part": ("watch", None),
    "level/n = 'x'": ("watch/instability/loss/level/n", "x"),
    "level/sigma = None": ("watch/instability/loss/level/sigma", None),
}


def _damaged_resume(root: Path, path: str, value: object) -> tuple[str, str]:
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=100, save_top_k=-1)
    first = _bundle(early_stopping=True)
    _trainer(root, [first, checkpoint], max_steps=100, logger=True).fit(Curve(diverge_at=DIVERGES_AT))
    ckpt = torch.load(checkpoint.best_model_path, weights_only=False)
    if path:
        node, *keys, last = [ckpt["callbacks"][first.state_key], *path.split("/")]
        for key in keys:
            node = node[key]
        node[last] = value
    else:
        ckpt["callbacks"][first.state_key] = value
    torch.save(ckpt, checkpoint.best_model_path)
    second = _bundle(early_stopping=True)
    trainer = _trainer(root, [second], logger=True)
    trainer.fit(Curve(diverge_at=DIVERGES_AT), ckpt_path=checkpoint.best_model_path)
    kept = int((second.history.series("loss").steps < 100).sum())
    if kept < (100 if path else 0):  # a state that is None holds no history to keep
        return "data lost", f"{kept} of the 100 points before the resume kept"
    if second.stop is None or second.stop.reason is not StopReason.DIVERGENCE:
        return "wrong stop", f"the divergence from step {DIVERGES_AT} was not stopped (ran {trainer.global_step})"
    return "ok", f"resumed, history kept, divergence stopped at {trainer.global_step}"


def case_other_monitor_resume(root: Path) -> tuple[str, str]:
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=100, save_top_k=-1)
    _trainer(root, [_bundle(), checkpoint], max_steps=100).fit(Curve(sparse=1))
    second = _bundle(monitor="train_acc")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _trainer(root, [second]).fit(Curve(sparse=1), ckpt_path=checkpoint.best_model_path)
    kept = int((second.history.series("loss").steps < 100).sum())
    told = any("resumed with monitor" in str(w.message) for w in said)
    return ("ok" if kept == 100 and told else "data lost"), f"{kept} of 100 loss points kept, told: {told}"


def case_stuck_fit_at_end(root: Path) -> tuple[str, str]:
    stuck = threading.Event()
    Forecaster.fit = lambda self, *args, **kwargs: stuck.wait()  # every fit blocks, forever
    bundle = Curvecast(forecast_every=20, background=True)
    start = time.perf_counter()
    _trainer(root, [bundle]).fit(Curve())
    took = time.perf_counter() - start
    return ("ok" if took < 60 else "hang"), f"trainer.fit returned after {took:.1f} s"


def case_divergence_stop_step(root: Path) -> tuple[str, str]:
    bundle = _bundle(early_stopping=True)
    trainer = _trainer(root, [bundle], log_every_n_steps=50)
    trainer.fit(Curve(diverge_at=DIVERGES_AT))
    anomalies = [a for report in bundle.reports for a in report.anomalies]
    confirmed = [a.step for a in anomalies if a.kind == "divergence" and a.severity == "critical"]
    if bundle.stop is None or not confirmed:
        return "wrong stop", "not stopped" if bundle.stop is None else "stopped without a confirmed divergence"
    # The losses reach the host every CPU_HOST_STEPS steps and are scored while the next step trains.
    late = trainer.global_step - 1 - confirmed[0]
    ok = bundle.stop.reason is StopReason.DIVERGENCE and 0 <= late <= CPU_HOST_STEPS + 1
    return ("ok" if ok else "wrong stop"), (
        f"confirmed at step {confirmed[0]}, stopped at {trainer.global_step} ({late} steps later)"
    )


def case_long_references(root: Path) -> tuple[str, str]:
    logs = root / "refs"
    for run in range(3):
        steps = np.linspace(0, 49_000_000, 3000).round().astype(np.int64)
        loss = 2.0 + 3.0 * (1 + steps / 1e5) ** -0.5 * (1 + 0.01 * run)
        lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * steps / steps[-1]))
        (logs / f"run{run}").mkdir(parents=True)
        rows = ["step,loss,lr-Adam", *(f"{s},{v},{r}" for s, v, r in zip(steps, loss, lr, strict=True))]
        (logs / f"run{run}" / "metrics.csv").write_text("\n".join(rows))
    tracemalloc.start()
    bundle = _bundle(references=str(logs))
    _trainer(root, [bundle]).fit(Curve())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ok = peak < 200 << 20 and bundle.last_report is not None
    return ("ok" if ok else "wrong stop"), f"peak {peak / 2**20:.0f} MiB traced over the whole run"


def case_bad_arguments(root: Path) -> tuple[str, str]:
    errors = 0
    for kwargs in ({"target": "x"}, {"target": math.nan}, {"forecast_every": 1.5}):
        try:
            Curvecast(**kwargs)
        except (TypeError, ValueError):
            errors += 1
    return ("ok" if errors == 3 else "wrong stop"), f"{errors} of 3 refused at construction"


def case_healthy_runs(root: Path) -> tuple[str, str]:
    stopped = []
    for kwargs in ({"target": 2.4}, {}, {"target": 2.3, "monitor": None}):
        bundle = _bundle(early_stopping=True, **kwargs)
        trainer = _trainer(root, [bundle])
        trainer.fit(Curve())
        if trainer.global_step < STEPS:
            stopped.append(f"{kwargs} at {trainer.global_step}: {bundle.stop.message[:60]}")
    return ("ok" if not stopped else "wrong stop"), "; ".join(stopped) or "3 of 3 ran to their end"


DAMAGED = {f"damaged state: {name}": (path, value) for name, (path, value) in DAMAGES.items()}
CASES = {
    "late monitor": case_late_monitor,
    "sparse metric": case_sparse_metric,
    "nearly full disk": case_low_disk,
    **{name: (lambda root, damage=damage: _damaged_resume(root, *damage)) for name, damage in DAMAGED.items()},
    "resume, other monitor": case_other_monitor_resume,
    "fit stuck at the end": case_stuck_fit_at_end,
    "divergence stop step": case_divergence_stop_step,
    "49M-step references": case_long_references,
    "bad arguments": case_bad_arguments,
    "healthy runs": case_healthy_runs,
}


def run_case(name: str) -> dict:
    """Run one case here (the child process): its outcome, or the crash."""
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("curvecast").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as root:
        try:
            outcome, detail = CASES[name](Path(root))
        except Exception as error:  # noqa: BLE001 - what the case measures: curvecast must never raise into the run
            outcome, detail = "crash", f"{type(error).__name__}: {str(error)[:120]}"
    return {"case": name, "outcome": outcome, "detail": detail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before a case counts as a hang")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    names = [n for n in CASES if args.only is None or args.only in n]
    rows = []
    for name in names:
        try:
            child = subprocess.run(
                [sys.executable, __file__, "--case", name, "--no-record"], capture_output=True, text=True,
                timeout=args.timeout,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )  # fmt: skip
            lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
            row = json.loads(lines[-1]) if lines else {
                "case": name, "outcome": "crash", "detail": f"process exited {child.returncode}",
            }  # fmt: skip
        except subprocess.TimeoutExpired:
            row = {"case": name, "outcome": "hang", "detail": f"no end within {args.timeout:g} s"}
        rows.append(row)
        print(f"{row['case']:<38} {row['outcome']:<11} {row['detail']}", flush=True)
    kinds = ("ok", "crash", "hang", "data lost", "wrong stop")
    counts = {kind: sum(r["outcome"] == kind for r in rows) for kind in kinds}
    print(f"\n{len(rows)} cases: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))


if __name__ == "__main__":
    from results import recorded

    with recorded("fault_table"):
        main()
