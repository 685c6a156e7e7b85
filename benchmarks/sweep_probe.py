"""Live Lightning sweeps of shapes no other benchmark has, pruned by every method: steps trained and regret.

    nice python benchmarks/sweep_probe.py [--sweeps cls_steplr overfit batch_warmup] [--seeds 0 1] [--trials 20]
        [--methods none median halving hyperband curvecast] [--explain] [--dump DIR]

About 8 to 10 minutes on two busy CPU cores with the defaults.

Each sweep is written the way the README's "Sweeps" section shows a user writing one: ``Curvecast(monitor=...)``
with its defaults and ``TrialReporter(trial)`` beside it, ``ForecastPruner()`` as the study's pruner, the run's length
given as ``max_epochs`` and the objective returning the monitor's last value. Optuna's pruners get a callback that
reports the monitor at each validation and prunes on ``trial.should_prune()`` (what optuna-integration's
``PyTorchLightningPruningCallback`` does). ``RandomSampler(seed)`` draws the same configurations for every method, and
each trains the same way under every method (seeded init and data order), so methods differ only in what they stop.

- ``cls_steplr``: 4-class 8x8 "images" (class templates, pixel noise, 10% label noise) and a tiny CNN; Adam, a
  ``StepLR`` stepped per epoch (step size and gamma drawn); ``val_acc`` maximized, validated once per epoch, 12
  epochs of 16 steps.
- ``overfit``: regression from 192 noisy training points; MLPs up to 3 x 512 wide overfit (``val_loss`` turns up
  mid-run), AdamW at a constant LR with weight decay drawn over 1e-6 .. 1; 40 epochs of 6 steps.
- ``batch_warmup``: the same classification data, an MLP, batch size (16-256) and LR drawn, 10% linear warmup then
  linear decay to zero stepped per batch; ``val_loss`` minimized, validated once per epoch, 10 epochs: a trial's step
  count (its horizon) is set by its batch size, 40 to 640 steps.

Printed per sweep, seed and method: steps trained as a share of the unpruned sweep's, the best value found, its
regret (how much worse than the unpruned sweep's best, relative), the trials completed; then the mean per method.
``--explain`` prints, for curvecast, each trial's final under no pruning, where it was stopped and the pruner's reason
then; ``--dump DIR`` writes every trial's curve and verdicts as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import optuna  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from optuna_sweep import ReportAndPrune, run_study  # noqa: E402 - as that benchmark reports, prunes and runs a study
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from curvecast import Curvecast  # noqa: E402
from curvecast.integrations.optuna import ForecastPruner, TrialReporter  # noqa: E402

METHODS = ("none", "median", "halving", "hyperband", "curvecast")
SWEEPS = ("cls_steplr", "overfit", "batch_warmup")


# -- data ------------------------------------------------------------------------------------------------------------


def images(seed: int, n_train: int = 1024, n_val: int = 512) -> tuple[torch.Tensor, ...]:
    """4 classes of 8x8 images: a fixed template per class (the same for every seed), pixel noise, 10% wrong labels."""
    templates = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(99)) * 0.6
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val
    y = torch.randint(4, (n,), generator=g)
    x = templates[y] + torch.randn(n, 1, 8, 8, generator=g)
    flip = torch.rand(n, generator=g) < 0.1
    y = torch.where(flip, torch.randint(4, (n,), generator=g), y)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def regression(seed: int, n_train: int = 192, n_val: int = 512) -> tuple[torch.Tensor, ...]:
    """A fixed nonlinear teacher of 16 features, label noise 0.3: few training points for the widest models."""
    teacher = torch.Generator().manual_seed(7)
    w1 = torch.randn(16, 24, generator=teacher) / 4.0
    w2 = torch.randn(24, generator=teacher) / math.sqrt(24)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_val, 16, generator=g)
    y = torch.tanh(2.0 * x @ w1) @ w2 * 2.0 + 0.3 * torch.randn(len(x), generator=g)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


# -- models ----------------------------------------------------------------------------------------------------------


class Model(pl.LightningModule):
    def __init__(self, net: torch.nn.Module, kind: str, optimizer: Any, schedule: Any = None) -> None:
        super().__init__()
        self.net, self.kind, self.make_optimizer, self.make_schedule = net, kind, optimizer, schedule

    def _loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = batch
        out = self.net(x)
        if self.kind == "reg":
            return torch.nn.functional.mse_loss(out.squeeze(-1), y), None
        return torch.nn.functional.cross_entropy(out, y), (out.argmax(-1) == y).float().mean()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)[0]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, acc = self._loss(batch)
        self.log("val_loss", loss)
        if acc is not None:
            self.log("val_acc", acc)

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.parameters())
        if self.make_schedule is None:
            return optimizer
        schedule, interval = self.make_schedule(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": interval}}


@dataclass
class Spec:
    """One trial: the model, its data loaders and its run length, built from the trial's suggestions."""

    model: Model
    train: DataLoader
    val: DataLoader
    epochs: int


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))  # fmt: skip


def cls_steplr(trial: optuna.Trial, data: tuple[torch.Tensor, ...], run_seed: int) -> Spec:
    lr = trial.suggest_float("lr", 1e-4, 0.1, log=True)
    channels = trial.suggest_categorical("channels", [2, 4, 8, 16])
    step_size = trial.suggest_categorical("step_size", [3, 5, 8])
    gamma = trial.suggest_categorical("gamma", [0.1, 0.3, 0.5])
    torch.manual_seed(run_seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, channels, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(channels * 16, 4),
    )  # fmt: skip

    def schedule(optimizer: torch.optim.Optimizer) -> tuple[Any, str]:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma), "epoch"

    model = Model(net, "cls", lambda p: torch.optim.Adam(p, lr=lr), schedule)
    x, y, vx, vy = data
    return Spec(model, _loader(x, y, 64, run_seed), DataLoader(TensorDataset(vx, vy), batch_size=len(vx)), 12)


def overfit(trial: optuna.Trial, data: tuple[torch.Tensor, ...], run_seed: int) -> Spec:
    lr = trial.suggest_float("lr", 3e-4, 3e-2, log=True)
    width = trial.suggest_int("width", 8, 512, log=True)
    depth = trial.suggest_int("depth", 1, 3)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1.0, log=True)
    torch.manual_seed(run_seed)
    layers: list[torch.nn.Module] = []
    size = 16
    for _ in range(depth):
        layers += [torch.nn.Linear(size, width), torch.nn.ReLU()]
        size = width
    net = torch.nn.Sequential(*layers, torch.nn.Linear(size, 1))
    model = Model(net, "reg", lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=weight_decay))
    x, y, vx, vy = data
    return Spec(model, _loader(x, y, 32, run_seed), DataLoader(TensorDataset(vx, vy), batch_size=len(vx)), 40)


def batch_warmup(trial: optuna.Trial, data: tuple[torch.Tensor, ...], run_seed: int) -> Spec:
    lr = trial.suggest_float("lr", 1e-4, 0.1, log=True)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256])
    x, y, vx, vy = data
    epochs = 10
    total = epochs * (len(x) // batch_size)
    warmup = max(total // 10, 1)

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))

    torch.manual_seed(run_seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    model = Model(net, "cls", lambda p: torch.optim.Adam(p, lr=lr),
                  lambda o: (torch.optim.lr_scheduler.LambdaLR(o, factor), "step"))  # fmt: skip
    return Spec(model, _loader(x, y, batch_size, run_seed), DataLoader(TensorDataset(vx, vy), batch_size=len(vx)),
                epochs)  # fmt: skip


TASKS = {  # the builder, the data, the monitor and its direction
    "cls_steplr": (cls_steplr, images, "val_acc", "maximize"),
    "overfit": (overfit, regression, "val_loss", "minimize"),
    "batch_warmup": (batch_warmup, images, "val_loss", "minimize"),
}


# -- methods ---------------------------------------------------------------------------------------------------------


class ExplainedPruner(ForecastPruner):
    """ForecastPruner keeping every verdict, with the trial's stored forecast at the time."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[int, list[dict[str, Any]]] = defaultdict(list)

    def prune(self, study: Any, trial: Any) -> bool:
        pruned = super().prune(study, trial)
        verdict = self.verdicts.get(trial.number)
        self.history[trial.number].append({
            "step": trial.last_step, "prune": pruned, "reason": verdict.reason if verdict else None,
            "chance": verdict.chance if verdict else None, "forecast": trial.user_attrs.get("curvecast_forecast"),
        })  # fmt: skip
        return pruned


def make_pruner(method: str, explain: bool) -> optuna.pruners.BasePruner:
    if method == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    if method == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if method == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if method == "curvecast":
        return ExplainedPruner() if explain else ForecastPruner()
    return optuna.pruners.NopPruner()


@dataclass
class Sweep:
    steps: int = 0
    best: float = math.nan
    complete: int = 0
    seconds: float = 0.0
    trials: list[dict[str, Any]] = field(default_factory=list)


def run_sweep(name: str, method: str, seed: int, args: argparse.Namespace) -> Sweep:
    build, make_data, monitor, direction = TASKS[name]
    data = make_data(seed)
    result = Sweep()
    stopped: dict[int, int] = {}

    def objective(trial: optuna.Trial) -> float:
        spec = build(trial, data, 1000 * seed + trial.number)
        if method == "curvecast":
            callbacks: list[pl.Callback] = [Curvecast(monitor=monitor), TrialReporter(trial)]
        else:
            callbacks = [ReportAndPrune(trial, monitor)]
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, max_epochs=spec.epochs, callbacks=callbacks,
        )  # fmt: skip
        try:
            trainer.fit(spec.model, spec.train, spec.val)
        finally:
            result.steps += int(trainer.global_step)
            stopped[trial.number] = int(trainer.global_step)
        return float(trainer.callback_metrics[monitor])

    pruner = make_pruner(method, args.explain or args.dump is not None)
    study = optuna.create_study(study_name=f"{name}-{seed}", direction=direction,
                                sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruner)  # fmt: skip
    values = [v for v in run_study(study, objective, args.trials, result) if math.isfinite(v)]
    result.complete = len(values)
    result.best = (min if direction == "minimize" else max)(values) if values else math.nan
    history = getattr(pruner, "history", {})
    for t in study.trials:
        result.trials.append({
            "number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
            "steps": stopped.get(t.number), "curve": sorted(t.intermediate_values.items()),
            "horizon": t.user_attrs.get("curvecast_horizon"), "verdicts": history.get(t.number, []),
            "pruned_reason": t.user_attrs.get("curvecast_pruned"),
        })  # fmt: skip
    return result


def regret(best: float, reference: float, direction: str) -> float:
    if math.isnan(best):
        return math.inf
    gap = best - reference if direction == "minimize" else reference - best
    return max(gap, 0.0) / abs(reference)


def explain(reference: Sweep, sweep: Sweep, direction: str) -> None:
    sign = 1.0 if direction == "minimize" else -1.0
    finals = [sign * t["value"] for t in reference.trials]
    best = min(finals)
    for ref, t in zip(reference.trials, sweep.trials, strict=True):
        gap = (sign * ref["value"] - best) / abs(best)
        where = "ran to its end" if t["state"] == "COMPLETE" else f"stopped at {t['steps']}/{ref['steps']}"
        last = t["verdicts"][-1]["reason"] if t["verdicts"] else t["pruned_reason"]
        print(f"      trial {t['number']:>2}: final {ref['value']:.4g} ({gap:+.2%}), {where}: {last}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", nargs="+", choices=SWEEPS, default=list(SWEEPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--explain", action="store_true", help="why curvecast stopped or kept each trial")
    parser.add_argument("--dump", type=Path, default=None, help="write every trial's curve and verdicts here")
    args = parser.parse_args(argv)
    methods = ["none", *[m for m in args.methods if m != "none"]]  # the reference every ratio is taken against

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "curvecast"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    print(f"{args.trials} trials per sweep; steps: % of the unpruned sweep's; regret: of the best completed value")
    print(f"{'sweep':<13} {'seed':>4} {'method':<10} {'steps':>7} {'best':>9} {'regret':>8} {'complete':>8} "
          f"{'time':>6}")  # fmt: skip
    table: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for name in args.sweeps:
        direction = TASKS[name][3]
        for seed in args.seeds:
            reference: Sweep | None = None
            for method in methods:
                sweep = run_sweep(name, method, seed, args)
                reference = reference or sweep
                share, lost = sweep.steps / reference.steps, regret(sweep.best, reference.best, direction)
                table[name, method].append((share, lost))
                print(f"{name:<13} {seed:>4} {method:<10} {share:>7.1%} {sweep.best:>9.4f} {lost:>8.2%} "
                      f"{sweep.complete:>4}/{args.trials:<3} {sweep.seconds:>5.0f}s", flush=True)  # fmt: skip
                if args.explain and method == "curvecast":
                    explain(reference, sweep, direction)
                if args.dump is not None:
                    args.dump.mkdir(parents=True, exist_ok=True)
                    (args.dump / f"{name}-{seed}-{method}.json").write_text(json.dumps(sweep.trials, default=str))
    print(f"\n{'sweep':<13} {'method':<10} {'mean steps':>10} {'max regret':>10} {'over 0.5%':>9}")
    for (name, method), cells in table.items():
        shares, regrets = [c[0] for c in cells], [c[1] for c in cells]
        over = sum(r > 0.005 for r in regrets)
        print(f"{name:<13} {method:<10} {statistics.mean(shares):>10.1%} {max(regrets):>10.2%} "
              f"{over:>4} of {len(cells)}")  # fmt: skip


if __name__ == "__main__":
    from results import recorded

    with recorded("sweep_probe"):
        main()
