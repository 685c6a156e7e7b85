"""The gain of ``Curvecast(references=DIR)`` on real Lightning runs: the forecast of a seed, alone, with the other
seeds of its recipe as references, and with a directory of every other run (all recipes, as a user's log folder
holds them), at 10/25/50 % of the run.

    nice python benchmarks/live_references.py [--seeds 5] [--recipes mlp_regression,char_lm,cnn_images] [--out DIR]

Each recipe is one workload of ``benchmarks/live_runs.py`` with its settings fixed (LR, batch, width, schedule) and
only the seed varying (data, initialisation, order). Every seed of every recipe first trains alone with
``Curvecast`` and a ``TensorBoardLogger`` (what a user's earlier runs leave behind); then each seed trains again,
with ``references=`` a directory holding the other seeds' logs of its recipe, and once more with one holding every
other run's (leave one run out: a run never sees itself). The truth is the mean training loss over the last 5 % of
the run, as in ``benchmarks/forecast_accuracy.py``; each cell is the median |relative error| of the final forecast
made at the first forecast at or after that fraction of the run, over the seeds, and the share of those forecasts
whose 80 % interval holds the truth. Forecasts run inline on a fixed cadence (``forecast_every`` = 2 % of the run),
so every arm forecasts at the same steps. About 3-7 minutes of CPU per recipe.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lightning.pytorch as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from live_runs import RunSpec, build  # noqa: E402

from curvecast import Curvecast  # noqa: E402
from curvecast.forecasting.references import MAX_REFERENCES  # noqa: E402

FRACTIONS = (0.1, 0.25, 0.5)
RECIPES = {
    "mlp_regression": RunSpec(name="mlp_regression", group="mlp_regression", seed=0, lr=1e-3, batch_size=32, width=64,
                              schedule="cosine", max_steps=400),
    "char_lm": RunSpec(name="char_lm", group="char_lm", seed=0, lr=2e-3, batch_size=32, width=48, schedule="cosine",
                       max_steps=300, optimizer="adamw", variant="gru", clip=1.0),
    "cnn_images": RunSpec(name="cnn_images", group="cnn_images", seed=0, lr=1e-3, batch_size=32, width=16,
                          schedule="step", max_steps=300),
}  # fmt: skip


def train(spec: RunSpec, logger: TensorBoardLogger | bool, references: Path | None) -> Curvecast:
    L.seed_everything(spec.seed, workers=True, verbose=False)
    torch.set_num_threads(1)
    module, train_loader, val_loader = build(spec)
    cc = Curvecast(
        forecast_every=max(spec.max_steps // 50, 1), background=False, forecast_budget=None, references=references,
        gradient_noise=False, advice=False, alerts=False, log_forecasts=False, tensorboard=logger is not False,
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=spec.max_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=logger, callbacks=[cc],
        val_check_interval=spec.val_every, check_val_every_n_epoch=None, limit_val_batches=2, num_sanity_val_steps=0,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        gradient_clip_val=spec.clip, deterministic=True, log_every_n_steps=spec.log_every,
    )  # fmt: skip
    trainer.fit(module, train_loader, val_loader)
    return cc


def truth(cc: Curvecast) -> float:
    values = cc.history.series("loss").values
    return float(np.mean(values[-max(len(values) // 20, 1) :]))


def errors(cc: Curvecast, final: float, max_steps: int) -> dict[float, tuple[float, bool]]:
    """The |relative error| of the first ok forecast at or after each fraction of the run, and whether its 80 %
    interval holds the truth (nan, False where none was made)."""
    out = {}
    for frac in FRACTIONS:
        made = [r for r in cc.reports if r.forecast is not None and r.forecast.ok and r.step >= frac * max_steps]
        if not made:
            out[frac] = (float("nan"), False)
            continue
        lo, hi = made[0].forecast.interval(0.8)
        out[frac] = (abs(made[0].forecast.final / final - 1.0), bool(lo <= final <= hi))
    return out


def train_alone(spec: RunSpec, seeds: int, root: Path) -> tuple[list[dict], list[float]]:
    """Each seed of the recipe alone, its log kept under ``root / spec.name``."""
    alone, finals = [], []
    for seed in range(seeds):
        s = replace(spec, seed=seed, name=f"{spec.name}-{seed}")
        cc = train(s, TensorBoardLogger(root / spec.name, name=f"seed_{seed}", version=0), None)
        finals.append(truth(cc))
        alone.append(errors(cc, finals[-1], spec.max_steps))
    return alone, finals


def with_references(spec: RunSpec, seeds: int, root: Path, finals: list[float], names: list[str], mixed: bool) -> list:
    """Each seed again, with the other seeds of its recipe as references, or (``mixed``) every other run of
    ``names``' recipes."""
    out = []
    for seed in range(seeds):
        others = root / f"{spec.name}-without-{seed}{'-mixed' if mixed else ''}"
        for name in names if mixed else [spec.name]:
            for other in range(seeds):
                if name != spec.name or other != seed:
                    shutil.copytree(root / name / f"seed_{other}", others / f"{name}_seed_{other}")
        cc = train(replace(spec, seed=seed, name=f"{spec.name}-{seed}"), False, others)
        read = len(names) * seeds - 1 if mixed else seeds - 1
        assert len(cc.cadence.references) == min(read, MAX_REFERENCES), "every other run must be read as a reference"
        out.append(errors(cc, finals[seed], spec.max_steps))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--out", type=Path, default=None, help="keep the logs there (default: a temporary directory)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # Lightning's and curvecast's console lines: only the table is printed
    root = args.out or Path(tempfile.mkdtemp(prefix="curvecast_refs_"))
    print(f"{args.seeds} seeds per recipe, leave one run out; logs in {root}")
    t0 = time.perf_counter()
    names = args.recipes.split(",")
    alone = {name: train_alone(RECIPES[name], args.seeds, root) for name in names}
    print("median |relative error| of the final training loss, and the share of 80% intervals holding it")
    print("recipe            prefix     alone  own recipe  every run   alone  own recipe  every run")
    for name in names:
        spec, (solo, finals) = RECIPES[name], alone[name]
        arms = [solo] + [with_references(spec, args.seeds, root, finals, names, mixed) for mixed in (False, True)]
        for frac in FRACTIONS:
            err = [100 * np.nanmedian([e[frac][0] for e in arm]) for arm in arms]
            cover = [100 * np.mean([e[frac][1] for e in arm]) for arm in arms]
            print(f"{name:<17} {frac:>5.0%}  {err[0]:7.2f}%  {err[1]:9.2f}%  {err[2]:8.2f}%  {cover[0]:5.0f}%  "
                  f"{cover[1]:9.0f}%  {cover[2]:8.0f}%", flush=True)  # fmt: skip
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    from results import recorded

    with recorded("live_references"):
        main()
