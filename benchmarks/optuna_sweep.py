"""Forecast pruning against Optuna's pruners, in a live sweep of a small Lightning MLP.

    nice python benchmarks/optuna_sweep.py [--seeds 0 1 2 3 4 5] [--trials 20] [--steps 400] [--methods none ...]

About 10 minutes on two busy CPU cores with the defaults (six seeds); ``--seeds 0 1 2`` takes half that.

Each seed is one sweep: ``RandomSampler(seed)`` draws the same configurations (LR, width, depth, batch size, weight
decay) for every method, and a configuration trains the same way under every method (seeded init and data order), so
methods differ only in which trials they stop, and when. Every trial is a real Lightning run of ``--steps`` steps
(AdamW, linear warmup then cosine decay to zero, stepped per batch) on a synthetic regression task, validated every
``--val-every`` steps; each method makes its decisions live in that run:

- ``none``: no pruning (the reference: its steps are 100% and its best value is the best there is);
- ``median``, ``halving``, ``hyperband``: Optuna's ``MedianPruner``, ``SuccessiveHalvingPruner`` and
  ``HyperbandPruner`` with their default settings, fed by a callback that reports ``val_loss`` at each validation and
  prunes on ``trial.should_prune()`` (what optuna-integration's ``PyTorchLightningPruningCallback`` does; reported at
  the optimizer step, so every trial's points line up);
- ``curvecast``: the study's pruner is ``ForecastPruner``, fed by ``Curvecast(monitor="val_loss")`` and its
  ``TrialReporter`` (the bundle's reports sent to the trial, with the run's horizon, schedule and forecast).

Printed per seed and method: steps trained as a share of the unpruned sweep's, the best value found, and its regret
(how much worse than the unpruned sweep's best, relative); then the mean over seeds and the worst seed's regret.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from curvecast import Curvecast  # noqa: E402
from curvecast.integrations.optuna import ForecastPruner, TrialReporter  # noqa: E402

METHODS = ("none", "median", "halving", "hyperband", "curvecast")
FEATURES = 8
NOISE = 0.1  # the label noise: the best reachable val_loss is about NOISE**2


def task(seed: int) -> tuple[torch.Tensor, ...]:
    """A fixed nonlinear teacher (the same for every seed) and 4096 training, 1024 validation points from it."""
    teacher = torch.Generator().manual_seed(1234)
    w1 = torch.randn(FEATURES, 32, generator=teacher) / math.sqrt(FEATURES)
    w2 = torch.randn(32, generator=teacher) / math.sqrt(32)
    data = torch.Generator().manual_seed(seed)
    x = torch.randn(5120, FEATURES, generator=data)
    y = torch.sin(2.0 * x @ w1) @ w2 * 2.0 + NOISE * torch.randn(5120, generator=data)
    return x[:4096], y[:4096], x[4096:], y[4096:]


class Batches(Dataset):
    """``steps`` random mini-batches, each a whole batch per item: no per-sample collation on the hot path."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, steps: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.index = torch.randint(len(x), (steps, batch_size), generator=generator)
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.index[i]
        return self.x[rows], self.y[rows]


class MLP(pl.LightningModule):
    def __init__(self, lr: float, width: int, depth: int, weight_decay: float, steps: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = []
        size = FEATURES
        for _ in range(depth):
            layers += [torch.nn.Linear(size, width), torch.nn.GELU()]
            size = width
        self.net = torch.nn.Sequential(*layers, torch.nn.Linear(size, 1))
        self.lr, self.weight_decay, self.steps = lr, weight_decay, steps

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(self.steps // 20, 1)
        schedule = torch.optim.lr_scheduler.SequentialLR(
            optimizer,
            [
                torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.05, total_iters=warmup),
                torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.steps - warmup),
            ],
            milestones=[warmup],
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class ReportAndPrune(pl.Callback):
    """Report ``monitor`` at each validation and prune on the study's pruner (optuna-integration's callback)."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss") -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value, step = float(trainer.callback_metrics[self.monitor]), int(trainer.global_step)
        if math.isfinite(value):
            self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at step {step}")


def pruner(method: str) -> optuna.pruners.BasePruner:
    return {
        "median": optuna.pruners.MedianPruner,
        "halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "curvecast": ForecastPruner,
    }.get(method, optuna.pruners.NopPruner)()


@dataclass
class Sweep:
    method: str
    seed: int
    steps: int = 0  # optimizer steps trained over all trials
    best: float = math.inf
    complete: int = 0
    seconds: float = 0.0


def run_sweep(method: str, seed: int, args: argparse.Namespace) -> Sweep:
    x, y, vx, vy = task(seed)
    val = DataLoader(torch.utils.data.TensorDataset(vx, vy), batch_size=len(vx))
    result = Sweep(method, seed)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 0.3, log=True)
        width = trial.suggest_int("width", 4, 256, log=True)
        depth = trial.suggest_int("depth", 1, 3)
        batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256])
        weight_decay = trial.suggest_float("weight_decay", 1e-5, 0.3, log=True)
        run_seed = 1000 * seed + trial.number
        model = MLP(lr, width, depth, weight_decay, args.steps, run_seed)
        train = DataLoader(Batches(x, y, batch_size, args.steps, run_seed), batch_size=None, shuffle=False)
        if method == "curvecast":
            # A forecast after every validation (no time budget): the trial is judged at each of them.
            bundle = Curvecast(monitor="val_loss", forecast_budget=None, gradient_noise=False, throughput=False,
                               advice=False, tensorboard=False, log_forecasts=False)  # fmt: skip
            callbacks: list[pl.Callback] = [bundle, TrialReporter(trial)]
        else:
            callbacks = [ReportAndPrune(trial)]
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, max_steps=args.steps,
            val_check_interval=args.val_every, check_val_every_n_epoch=None, callbacks=callbacks,
        )  # fmt: skip
        try:
            trainer.fit(model, train, val)  # raises optuna.TrialPruned when the trial is pruned
        finally:
            result.steps += int(trainer.global_step)
        return float(trainer.callback_metrics["val_loss"])

    sampler = optuna.samplers.RandomSampler(seed=seed)
    # A fixed name: HyperbandPruner assigns trials to brackets by a hash of the study's name (random by default).
    study = optuna.create_study(
        study_name=f"sweep-seed{seed}", direction="minimize", sampler=sampler, pruner=pruner(method)
    )
    values = run_study(study, objective, args.trials, result)
    finite = [v for v in values if math.isfinite(v)]
    result.complete = len(values)
    result.best = min(finite) if finite else math.inf
    if args.verbose:
        for t in study.trials:
            last = max(t.intermediate_values, default=0)
            value = t.value if t.value is not None else t.intermediate_values.get(last, math.nan)
            state = f"{t.state.name:<8} step {last:>5}"
            print(f"     {method:<10} trial {t.number:>2} {state} val_loss {value:.4f}  {t.params}")
    return result


def run_study(study: Any, objective: Any, trials: int, result: Any) -> list[float]:
    """``study.optimize`` for ``trials`` trials, its wall time into ``result.seconds``: the values of the trials that
    completed with one."""
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    result.seconds = time.perf_counter() - started
    return [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--val-every", type=int, default=20)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--verbose", action="store_true", help="print every trial: state, last step, value")
    args = parser.parse_args(argv)
    if "none" not in args.methods:
        args.methods = ["none", *args.methods]  # the reference every ratio is taken against

    torch.set_num_threads(1)  # tiny models: threads cost more than they bring
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "curvecast"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    print(f"{args.trials} trials x {args.steps} steps per sweep, validated every {args.val_every} steps")
    print(f"{'seed':>4} {'method':<10} {'steps':>7} {'best val_loss':>13} {'regret':>8} {'complete':>8} {'time':>6}")
    table: dict[str, list[Sweep]] = {m: [] for m in args.methods}
    for seed in args.seeds:
        reference = None
        for method in args.methods:
            sweep = run_sweep(method, seed, args)
            table[method].append(sweep)
            reference = reference or sweep
            share = sweep.steps / reference.steps
            regret = sweep.best / reference.best - 1.0
            print(
                f"{seed:>4} {method:<10} {share:>7.1%} {sweep.best:>13.5f} {regret:>8.2%} "
                f"{sweep.complete:>4}/{args.trials:<3} {sweep.seconds:>5.0f}s",
                flush=True,
            )
    print(f"\nover {len(args.seeds)} seeds  {'mean steps':>10} {'max steps':>9} {'mean regret':>11} {'max regret':>10}")
    for method, sweeps in table.items():
        shares = [s.steps / r.steps for s, r in zip(sweeps, table["none"], strict=True)]
        regrets = [s.best / r.best - 1.0 for s, r in zip(sweeps, table["none"], strict=True)]
        print(
            f"{method:<20} {statistics.mean(shares):>10.1%} {max(shares):>9.1%} "
            f"{statistics.mean(regrets):>11.2%} {max(regrets):>10.2%}"
        )


if __name__ == "__main__":
    from results import recorded

    with recorded("optuna_sweep"):
        main()
