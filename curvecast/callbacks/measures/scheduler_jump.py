"""The LR of any later step of a torch LR scheduler in one call, when its LR is a function of its step count.

Replaying a scheduler step by step costs one call per step; for a run of 50 million steps that is minutes. Most torch
schedulers compute their LR from ``last_epoch`` alone (a closed form, ``LambdaLR``, ``OneCycleLR``,
``CosineAnnealingWarmRestarts.step(epoch)``, a ``SequentialLR`` of such parts), so a throw-away copy can be moved to
any step count and read. Schedulers that keep other state return None and are only replayed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from torch.optim import lr_scheduler as schedulers

__all__ = ["epoch_lr_function"]


def epoch_lr_function(scheduler: Any) -> Callable[[int], float] | None:
    """A function from a step count (``last_epoch``) to the LR of the scheduler's first param group, or None.

    Only for schedulers whose LR is a function of their step count alone and computed by torch's own code (a custom
    ``get_lr`` qualifies when it ignores the optimizer's current LR). It moves the scheduler (a throw-away copy) to
    that step count. None for those that keep other state (``MultiplicativeLR``, ``ChainedScheduler``, a custom step).
    """
    group = scheduler.optimizer.param_groups[0]
    kind = type(scheduler)
    if isinstance(scheduler, schedulers.SequentialLR) and _by_torch(kind, "step"):
        return _sequential(scheduler)
    if isinstance(scheduler, schedulers.CosineAnnealingWarmRestarts) and _by_torch(kind, "step", "get_lr"):

        def restarts(epoch: int) -> float:
            scheduler.step(epoch)  # torch computes the restart and the position in it from the epoch
            return float(group["lr"])

        return restarts
    if not _by_torch(kind, "step"):
        return None
    if _by_torch(kind, "_get_closed_form_lr", "get_lr"):
        return lambda epoch: _at_epoch(scheduler, epoch, scheduler._get_closed_form_lr)
    if isinstance(scheduler, schedulers.OneCycleLR) and _by_torch(kind, "get_lr"):
        # Past total_steps OneCycleLR refuses to step: the replay holds the last LR, so does the jump.
        return lambda epoch: _at_epoch(scheduler, min(epoch, scheduler.total_steps), scheduler.get_lr)
    if isinstance(scheduler, (schedulers.LambdaLR, schedulers.CyclicLR)) and _by_torch(kind, "get_lr"):
        return lambda epoch: _at_epoch(scheduler, epoch, scheduler.get_lr)
    if not _by_torch(kind, "get_lr") and _ignores_current_lr(scheduler):
        return lambda epoch: _at_epoch(scheduler, epoch, scheduler.get_lr)
    return None


def _at_epoch(scheduler: Any, epoch: int, compute: Callable[[], list]) -> float:
    scheduler.last_epoch = epoch
    return float(compute()[0])


def _sequential(scheduler: Any) -> Callable[[int], float] | None:
    """SequentialLR: its part i runs from milestone i - 1, restarted at step count 0 there (torch's ``step(0)``)."""
    parts = [epoch_lr_function(part) for part in scheduler._schedulers]
    if any(part is None for part in parts):
        return None
    milestones = list(scheduler._milestones)

    def lr(epoch: int) -> float:
        i = bisect_right(milestones, epoch)
        return parts[i](epoch if i == 0 else epoch - milestones[i - 1])

    return lr


def _by_torch(kind: type, *names: str) -> bool:
    """Whether torch's own scheduler classes define each of ``names`` for ``kind`` (no subclass overrides them)."""
    for name in names:
        owner = next((k for k in kind.__mro__ if name in k.__dict__), None)
        if owner is None or not owner.__module__.startswith("torch.optim"):
            return False
    return True


def _ignores_current_lr(scheduler: Any) -> bool:
    """Whether a custom ``get_lr`` gives the same LR whatever the optimizer's current LR (so it is no chained update
    ``lr *= factor``); what else it reads is checked against the replay."""
    group = scheduler.optimizer.param_groups[0]
    saved_lr, saved_epoch = group["lr"], scheduler.last_epoch
    try:
        answers = set()
        for probe in (1.0, 2.0):
            group["lr"] = probe
            answers.add(float(scheduler.get_lr()[0]))
        return len(answers) == 1
    except Exception:  # noqa: BLE001 - an unreadable get_lr is one the jump cannot use
        return False
    finally:
        group["lr"], scheduler.last_epoch = saved_lr, saved_epoch
