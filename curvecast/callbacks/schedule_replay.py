"""The planned learning rate of every step of a run, learned by replaying copies of its LR schedulers.

A copy of each scheduler drives a throw-away optimizer with one tiny parameter per param group, so the real optimizer
and its (possibly huge) state are never touched or copied. Schedules that depend on the future (ReduceLROnPlateau),
runs without a known length, and manual optimization (the module steps its schedulers itself) cannot be replayed:
the result then says why, and the forecaster goes on without the schedule.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["PlannedSchedule", "replay_schedule", "run_horizon"]


@dataclass(frozen=True)
class PlannedSchedule:
    """LRs of the first optimizer's first param group from ``start`` to ``horizon`` (inclusive), or why not known."""

    start: int
    lrs: np.ndarray | None
    reason: str | None = None

    @property
    def known(self) -> bool:
        return self.lrs is not None


class _ThrowawayOptimizer(torch.optim.Optimizer):
    """An optimizer with the real one's param-group settings and one 1-element parameter per group."""

    def __init__(self, real: torch.optim.Optimizer) -> None:
        groups = [
            {**{k: v for k, v in group.items() if k != "params"}, "params": [torch.zeros(1)]}
            for group in real.param_groups
        ]
        super().__init__(groups, dict(real.defaults))

    def step(self, closure: Any = None) -> None:  # the replay only reads LRs
        return None


def run_horizon(trainer: Any) -> int | None:
    """The last optimizer step of the run (``max_steps``, else Lightning's estimate), or None when unknown."""
    max_steps = int(getattr(trainer, "max_steps", -1) or -1)
    if max_steps > 0:
        module = getattr(trainer, "lightning_module", None)
        optimizers = len(getattr(trainer, "optimizers", None) or [])
        if module is not None and not module.automatic_optimization and optimizers > 1:
            # `max_steps` counts every optimizer's steps, curvecast's step axis counts batches: a GAN stepping its
            # two optimizers once per batch ends after max_steps / 2 batches.
            return max_steps // optimizers
        return max_steps
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - Lightning raises for unsized loaders; an unknown length is an answer
        return None
    if total is None or not math.isfinite(total) or total <= 0:
        return None
    return int(total)


def _steps_per_epoch(trainer: Any) -> int | None:
    batches = getattr(trainer, "num_training_batches", None)
    if batches is None or not math.isfinite(batches):
        return None
    return max(math.ceil(batches / max(trainer.accumulate_grad_batches, 1)), 1)


def replay_schedule(trainer: Any, start: int, horizon: int) -> PlannedSchedule:
    """Replay the schedulers of ``trainer.optimizers[0]`` from their current state, for steps ``start..horizon``.

    Cost: one ``scheduler.step()`` per step, about 10 us on CPU, so roughly a second per 100,000 steps, once per fit.
    """
    if not trainer.optimizers:
        return PlannedSchedule(start, None, "the trainer has no optimizer")
    optimizer = trainer.optimizers[0]
    if horizon < start:
        return PlannedSchedule(start, None, f"the run is already past its horizon ({start} > {horizon})")
    configs = [c for c in trainer.lr_scheduler_configs if getattr(c.scheduler, "optimizer", None) is optimizer]
    if any(c.reduce_on_plateau for c in configs):
        return PlannedSchedule(start, None, "ReduceLROnPlateau depends on future metrics and cannot be replayed")
    module = trainer.lightning_module
    if configs and module is not None and not module.automatic_optimization:
        return PlannedSchedule(start, None, "under manual optimization the module steps its schedulers itself")
    steps_per_epoch = _steps_per_epoch(trainer)
    if any(c.interval == "epoch" for c in configs) and steps_per_epoch is None:
        return PlannedSchedule(start, None, "an epoch-interval scheduler with an unsized training loader")

    throwaway = _ThrowawayOptimizer(optimizer)
    copies = copy.deepcopy([c.scheduler for c in configs], memo={id(optimizer): throwaway})
    lrs = np.empty(horizon - start + 1, dtype=np.float64)
    with warnings.catch_warnings():
        # Schedulers warn that their step() precedes optimizer.step(): true, and harmless on a throw-away copy.
        warnings.simplefilter("ignore")
        for i, step in enumerate(range(start, horizon + 1)):
            lrs[i] = float(throwaway.param_groups[0]["lr"])
            done = step + 1  # optimizer steps completed after this one
            for config, scheduler in zip(configs, copies, strict=True):
                if config.interval == "step":
                    due = done % config.frequency == 0
                else:
                    due = done % steps_per_epoch == 0 and (done // steps_per_epoch) % config.frequency == 0
                if not due:
                    continue
                try:
                    scheduler.step()
                except ValueError:
                    # OneCycleLR refuses to step past its total_steps; the real run would stop there too.
                    lrs[i + 1 :] = lrs[i]
                    return PlannedSchedule(start, lrs, None)
    return PlannedSchedule(start, lrs, None)
