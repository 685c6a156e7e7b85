"""What a planned LR schedule was replayed from, and what in the run replaced it since.

Standard Lightning callbacks change a run's schedule mid-fit without any code of the user's:
``StochasticWeightAveraging`` puts its ``SWALR`` in place of the configured scheduler at ``swa_epoch_start``, a
``LearningRateFinder`` run at a later epoch (the ``FineTuneLearningRateFinder`` of Lightning's docs) restores the run
and sets the LR it found, a callback that sets the optimizers up again brings new optimizers and schedulers. Such an
LR is planned again from the new schedulers; only an LR that changed with nothing of this changed was set by hand. The
source is compared by identity, and only when a recorded LR disagrees with the plan: a few attribute reads, never per
step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ScheduleSource", "first_optimizer_schedulers"]


def first_optimizer_schedulers(trainer: Any) -> list[Any]:
    """The scheduler configs driving ``trainer.optimizers[0]`` (the optimizer whose LR is planned)."""
    optimizers = getattr(trainer, "optimizers", None)
    if not optimizers:
        return []
    first = optimizers[0]
    configs = getattr(trainer, "lr_scheduler_configs", None) or []
    return [c for c in configs if getattr(c.scheduler, "optimizer", None) is first]


def _finders(trainer: Any) -> list[Any]:
    """The run's LR finder callbacks (Lightning's ``LearningRateFinder`` and its subclasses, either flavour: duck-typed
    by its ``lr_find`` method and the ``optimal_lr`` its last search left)."""
    callbacks = getattr(trainer, "callbacks", None) or []
    return [c for c in callbacks if callable(getattr(c, "lr_find", None)) and hasattr(c, "optimal_lr")]


@dataclass(frozen=True, eq=False)
class ScheduleSource:
    """The objects a plan was replayed from: the first optimizer, the configs and schedulers driving it, and each LR
    finder's last search result (a new one means it searched, and may have set the LR, since)."""

    optimizer: Any
    configs: tuple[Any, ...]
    schedulers: tuple[Any, ...]
    searches: tuple[tuple[Any, Any], ...]  # (finder callback, its optimal_lr)

    @classmethod
    def of(cls, trainer: Any) -> ScheduleSource:
        optimizers = getattr(trainer, "optimizers", None)
        configs = tuple(first_optimizer_schedulers(trainer))
        return cls(
            optimizers[0] if optimizers else None,
            configs,
            tuple(c.scheduler for c in configs),
            tuple((f, f.optimal_lr) for f in _finders(trainer)),
        )

    def change(self, trainer: Any) -> str | None:
        """What differs in ``trainer`` from this source, in words (``"StochasticWeightAveraging's SWALR in place of
        OneCycleLR"``), or None when the schedule was planned from what the run uses now."""
        now = ScheduleSource.of(trainer)
        said = []
        if now.optimizer is not self.optimizer:
            said.append(f"a new {type(now.optimizer).__name__} optimizer")
        if not _same(now.configs, self.configs) or not _same(now.schedulers, self.schedulers):
            said.append(_schedulers_change(trainer, self.schedulers, now.schedulers))
        before = {id(f): result for f, result in self.searches}
        for finder, result in now.searches:
            if result is not None and before.get(id(finder)) is not result:
                said.append(f"{type(finder).__name__}'s new LR search")
        return "; ".join(said) or None


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _schedulers_change(trainer: Any, before: tuple[Any, ...], now: tuple[Any, ...]) -> str:
    added = [_named(trainer, s) for s in now if not any(s is b for b in before)]
    removed = [type(s).__name__ for s in before if not any(s is n for n in now)]
    if added and removed:
        return f"{', '.join(added)} in place of {', '.join(removed)}"
    if added:
        return f"{', '.join(added)} added"
    if removed:
        return f"{', '.join(removed)} removed"
    return "the scheduler configuration replaced"  # the same schedulers, stepped on another interval or frequency


def _named(trainer: Any, scheduler: Any) -> str:
    """The scheduler's class, with the callback that holds it when one does (``StochasticWeightAveraging's SWALR``)."""
    name = type(scheduler).__name__
    for callback in getattr(trainer, "callbacks", None) or []:
        if any(value is scheduler for value in getattr(callback, "__dict__", {}).values()):
            return f"{type(callback).__name__}'s {name}"
    return name
