"""The planned learning rate of every step of a run, learned by replaying copies of its LR schedulers.

A copy of each scheduler drives a throw-away optimizer with one tiny parameter per param group, so the real optimizer
and its (possibly huge) state are never touched or copied. The replay goes step by step for at most
``REPLAY_BUDGET`` steps (about a second); a longer run's later steps are found by jumping the scheduler ahead: most
torch schedulers compute their LR from their step count alone (a closed form, ``LambdaLR``, ``OneCycleLR``,
``CosineAnnealingWarmRestarts.step(epoch)``, a ``SequentialLR`` of such parts), so the LR of any later step is one
call, and :func:`~curvecast.forecasting.knots.sample_knots` follows it in a bounded number of knots. Each jump is
first checked against the replayed steps. So the start-up cost and the memory do not grow with the run length.

What cannot be known says why, and the forecaster goes on without the schedule: schedules that depend on the future
(ReduceLROnPlateau), runs without a known length, manual optimization (the module steps its schedulers itself),
a scheduler that keeps its own state past the replay budget (``MultiplicativeLR``, ``ChainedScheduler``, several
schedulers on one optimizer, a custom ``step``), and a planned LR that is no usable LR (0 throughout, not finite).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from curvecast.callbacks.measures.schedule_source import first_optimizer_schedulers
from curvecast.callbacks.measures.scheduler_jump import epoch_lr_function
from curvecast.forecasting.knots import SampledKnots, interpolate_knots, sample_knots

__all__ = [
    "REPLAY_BUDGET",
    "PlannedSchedule",
    "epochs_of_unsized_loader",
    "replay_schedule",
    "run_horizon",
    "steps_per_epoch",
    "unknown_length_reason",
]

# Steps replayed one by one before jumping ahead: one scheduler.step() and the bookkeeping cost about 10 us on CPU,
# so about a second here, whatever the run length.
REPLAY_BUDGET = 100_000
# A jump is checked against this many replayed steps (spread over the replay, the last ones included).
_CHECKS = 256
# Jumped and replayed LRs may differ by rounding (a closed form against the recursive update): this much, relative.
# The LR a live step used is held to the same: the replay runs the same scheduler code on a copy.
_RTOL = 1e-6
# An epoch-interval (or every-n-steps) scheduler holds its LR for a whole period: up to this many periods past the
# replay, each is evaluated and kept as a flat stair (two knots); more are sampled by bisection over the periods,
# each sampled period's LR at its first step (a change then a ramp over one period).
_MAX_STAIRS = 16_384


@dataclass(frozen=True)
class PlannedSchedule:
    """The planned LRs of the first optimizer's first param group from ``start`` to the horizon, or why not known.

    ``lrs`` holds the replayed steps ``start..end``; past them, when the run is longer, ``tail`` holds knots from
    ``end`` to the horizon, linear between knots, within about ``tail.tolerance`` of the scheduler's LR, and
    ``exact_lr`` computes the LR of any of those steps by jumping the scheduler's copy there.
    """

    start: int
    lrs: np.ndarray | None
    reason: str | None = None
    tail: SampledKnots | None = None
    replayed_steps: int = 0  # scheduler.step() calls made on the copies
    jump_evaluations: int = 0  # LRs computed by jumping a copy ahead
    exact_lr: Callable[[int], float] | None = field(default=None, repr=False, compare=False)
    # Unknown by the scheduler's nature (ReduceLROnPlateau, a module stepping its own): nothing for the user to fix.
    by_design: bool = False

    @property
    def known(self) -> bool:
        return self.lrs is not None

    @property
    def end(self) -> int:
        """The last replayed step."""
        return self.start + len(self.lrs) - 1 if self.lrs is not None else self.start - 1

    @property
    def horizon(self) -> int:
        return int(self.tail.steps[-1]) if self.tail is not None else self.end

    def disagreement(self, step: int, lr: float) -> float | None:
        """The planned LR of ``step`` if ``lr`` differs from it by more than rounding, else None (also outside the
        plan). O(1) on replayed steps; past them O(log knots), and one exact jump where the knots disagree (a feature
        narrower than the knots' spacing is no LR changed by hand)."""
        if self.lrs is None or not self.start <= step <= self.horizon:
            return None
        if step <= self.end:
            planned = float(self.lrs[step - self.start])
            return planned if not _close(lr, planned) else None
        planned = interpolate_knots(self.tail.steps, self.tail.lrs, step)
        if _close(lr, planned, self.tail.tolerance):
            return None
        if self.exact_lr is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                planned = self.exact_lr(step)
        return planned if not _close(lr, planned) else None


def _close(a: float, b: float, atol: float = 0.0) -> bool:
    return abs(a - b) <= atol + _RTOL * max(abs(a), abs(b))


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


def epochs_of_unsized_loader(trainer: Any) -> bool:
    """The run is ``max_epochs`` (no ``max_steps``) of a training loader with no length: its length is known once an
    epoch has ended."""
    max_epochs = getattr(trainer, "max_epochs", None)
    max_steps = int(getattr(trainer, "max_steps", -1) or -1)
    return max_epochs is not None and max_epochs > 0 and max_steps <= 0 and steps_per_epoch(trainer) is None


def unknown_length_reason(trainer: Any) -> str:
    """Why ``run_horizon`` knows no last step: no step or epoch limit at all (``max_time``, or an endless run), or
    epochs of a training loader with no length."""
    max_epochs = getattr(trainer, "max_epochs", None)
    if max_epochs is None or max_epochs < 0:
        return "the run length is unknown (no `max_steps` nor `max_epochs`: a `max_time` or an endless run)"
    return f"the run length is unknown (`max_epochs={max_epochs}` of a training loader with no length)"


def steps_per_epoch(trainer: Any) -> int | None:
    """Optimizer steps per epoch of the training loader as it is now (None: it has no length)."""
    batches = getattr(trainer, "num_training_batches", None)
    if batches is None or not math.isfinite(batches):
        return None
    return max(math.ceil(batches / max(trainer.accumulate_grad_batches, 1)), 1)


def replay_schedule(trainer: Any, start: int, horizon: int, budget: int = REPLAY_BUDGET) -> PlannedSchedule:
    """The planned LRs of ``trainer.optimizers[0]`` for steps ``start..horizon``, from its schedulers' current state.

    Steps ``start..start + budget`` are replayed one by one (one ``scheduler.step()`` each, about 10 us); later ones
    are jumped to (see the module docstring), or the schedule is unknown with the reason.
    """
    if not trainer.optimizers:
        return PlannedSchedule(start, None, "the trainer has no optimizer")
    optimizer = trainer.optimizers[0]
    if horizon < start:
        return PlannedSchedule(start, None, f"the run is already past its horizon ({start} > {horizon})")
    configs = first_optimizer_schedulers(trainer)
    if any(c.reduce_on_plateau for c in configs):
        return PlannedSchedule(
            start, None, "ReduceLROnPlateau depends on future metrics and cannot be replayed", by_design=True
        )
    module = trainer.lightning_module
    if configs and module is not None and not module.automatic_optimization:
        return PlannedSchedule(
            start, None, "under manual optimization the module steps its schedulers itself", by_design=True
        )
    per_epoch = steps_per_epoch(trainer)
    if any(c.interval == "epoch" for c in configs) and per_epoch is None:
        return PlannedSchedule(
            start, None, "an epoch-interval scheduler with an unsized training loader", by_design=True
        )

    throwaway = _ThrowawayOptimizer(optimizer)
    copies = copy.deepcopy([c.scheduler for c in configs], memo={id(optimizer): throwaway})
    first_epochs = [int(getattr(s, "last_epoch", 0)) for s in copies]  # the schedulers' step counts at `start`
    end = min(horizon, start + budget)
    periods = [_period(c, per_epoch) for c in configs]
    with warnings.catch_warnings():
        # Schedulers warn that their step() precedes optimizer.step() and that get_lr() is called outside step():
        # true, and harmless on throw-away copies.
        warnings.simplefilter("ignore")
        lrs, replayed, ended = _replay(copies, periods, throwaway, start, end)
        jump = _Jump(copies, periods, first_epochs, start)
        if end == horizon:
            tail, reason = None, None
        elif ended or not copies:  # the LR stays where the replay left it
            tail, reason = SampledKnots(np.array([end, horizon]), np.array([lrs[-1], lrs[-1]]), 0.0, 0), None
        else:
            tail, reason = jump.tail(lrs, end, horizon)
    lrs, tail = _untrained_end(lrs, tail)
    reason = reason or _unusable(lrs, tail, start)
    if reason is not None:
        return PlannedSchedule(start, None, reason, replayed_steps=replayed, jump_evaluations=jump.evaluations)
    return PlannedSchedule(start, lrs, None, tail, replayed, jump.evaluations, jump.exact_lr)


def _period(config: Any, steps_per_epoch: int | None) -> int:
    """Optimizer steps between two steps of a scheduler: ``frequency`` steps or epochs."""
    return config.frequency if config.interval == "step" else steps_per_epoch * config.frequency


def _replay(
    copies: list[Any], periods: list[int], throwaway: torch.optim.Optimizer, start: int, end: int
) -> tuple[np.ndarray, int, bool]:
    """LRs of steps ``start..end`` stepping the copies as Lightning would; the scheduler steps taken; whether a
    scheduler refused to step further (the LR then stays)."""
    lrs = np.empty(end - start + 1, dtype=np.float64)
    stepped = 0
    for i, step in enumerate(range(start, end + 1)):
        lrs[i] = float(throwaway.param_groups[0]["lr"])
        done = step + 1  # optimizer steps completed after this one
        for period, scheduler in zip(periods, copies, strict=True):
            if done % period:
                continue
            try:
                scheduler.step()
            except ValueError:
                # OneCycleLR refuses to step past its total_steps; the real run would stop there too.
                lrs[i + 1 :] = lrs[i]
                return lrs, stepped, True
            stepped += 1
    return lrs, stepped, False


def _untrained_end(lrs: np.ndarray, tail: SampledKnots | None) -> tuple[np.ndarray, SampledKnots | None]:
    """The planned LRs with that of the horizon step, which no step trains with (steps ``0..horizon - 1`` run), the
    last trained step's where the scheduler leaves no learning rate there: a ``OneCycleLR`` with linear annealing
    lands at -1e-5 after its last step, and that one value made the whole schedule unknown."""
    def usable(value: float) -> bool:
        return bool(np.isfinite(value) and value >= 0)

    if tail is None:
        if len(lrs) > 1 and not usable(lrs[-1]):
            lrs = np.concatenate([lrs[:-1], lrs[-2:-1]])
        return lrs, tail
    if len(tail.lrs) > 1 and not usable(tail.lrs[-1]) and tail.steps[-1] - tail.steps[-2] == 1:
        tail = replace(tail, lrs=np.concatenate([tail.lrs[:-1], tail.lrs[-2:-1]]))
    return lrs, tail


def _unusable(lrs: np.ndarray, tail: SampledKnots | None, start: int) -> str | None:
    """Why the planned LRs are no schedule to forecast with, or None."""
    steps = np.arange(start, start + len(lrs))
    if tail is not None:
        steps, values = np.concatenate([steps, tail.steps]), np.concatenate([lrs, tail.lrs])
    else:
        values = lrs
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        return f"the planned LR of step {int(steps[bad[0]])} is {values[bad[0]]}, not a learning rate"
    if not values.max() > 0:
        return (
            f"the planned LR is 0 at every step from {start} to {int(steps[-1])} (is the LR set by hand, or a "
            "scheduler stepped outside Lightning?)"
        )
    return None


class _Jump:
    """Knots of the one scheduler's LR past the replay, by evaluating it at later step counts directly."""

    def __init__(self, copies: list[Any], periods: list[int], first_epochs: list[int], start: int) -> None:
        self.copies, self.periods, self.first_epochs, self.start = copies, periods, first_epochs, start
        self.evaluations = 0
        self.exact_lr: Callable[[int], float] | None = None  # the LR of a step past the replay, once checked

    def tail(self, replayed: np.ndarray, end: int, horizon: int) -> tuple[SampledKnots | None, str | None]:
        """Knots from ``end`` (its replayed LR) to ``horizon``, or why the LR there cannot be known cheaply."""
        if len(self.copies) > 1:
            names = ", ".join(type(s).__name__ for s in self.copies)
            return None, f"the LR past step {end} is unknown: several schedulers ({names}) drive it together"
        scheduler = self.copies[0]
        lr_of_epoch = epoch_lr_function(scheduler)
        name = type(scheduler).__name__
        if lr_of_epoch is None:
            return None, (
                f"the LR past step {end} is unknown: {name} keeps state that only replaying every step reveals, and "
                f"the replay stops after {end - self.start:,} steps to keep the start-up short"
            )
        counted = self._counted(lr_of_epoch)
        try:
            disagreement = self._check(counted, replayed, end)
            if disagreement is not None:
                return None, f"the LR past step {end} is unknown: {name} {disagreement}"
            knots = self._sample(counted, replayed, end, horizon)
        except Exception as error:  # noqa: BLE001 - a user's lr_lambda may fail far out; that is an answer too
            return None, f"the LR past step {end} is unknown: {name} failed there ({type(error).__name__}: {error})"
        if knots is None:
            return None, f"the LR past step {end} is unknown: {name} changes too often to follow in bounded memory"
        self.exact_lr = lambda step: lr_of_epoch(int(self._epoch(step)))
        return knots, None

    def _counted(self, lr_of_epoch: Callable[[int], float]) -> Callable[[int], float]:
        def lr(epoch: int) -> float:
            self.evaluations += 1
            return lr_of_epoch(epoch)

        return lr

    def _epoch(self, step: np.ndarray | int) -> np.ndarray | int:
        """The scheduler's step count while the run is at ``step``: it steps after each ``period``-th step."""
        period = self.periods[0]
        return self.first_epochs[0] + step // period - self.start // period

    def _check(self, lr_of_epoch: Callable[[int], float], replayed: np.ndarray, end: int) -> str | None:
        """How the jumped LRs disagree with the replayed ones, or None when they agree to rounding."""
        spread = np.linspace(self.start, end, _CHECKS).round().astype(np.int64)
        for step in np.unique(np.r_[spread, np.arange(max(self.start, end - 8), end + 1)]):
            jumped, seen = lr_of_epoch(int(self._epoch(step))), float(replayed[step - self.start])
            if abs(jumped - seen) > _RTOL * max(abs(jumped), abs(seen)) + 1e-300:
                return (
                    f"computed for step {step} gives LR {jumped:.6g} where replaying it gives {seen:.6g}: it keeps "
                    "state that only replaying every step reveals"
                )
        return None

    def _sample(
        self, lr_of_epoch: Callable[[int], float], replayed: np.ndarray, end: int, horizon: int
    ) -> SampledKnots | None:
        period, first, last = self.periods[0], int(self._epoch(end)), int(self._epoch(horizon))
        peak = float(replayed.max())
        lr_of_epochs = lambda epochs: np.array([lr_of_epoch(int(e)) for e in epochs])
        if period == 1:
            knots = sample_knots(lr_of_epochs, first, last, scale=peak)
            if knots is None:
                return None
            steps = knots.steps - first + end
            return SampledKnots(steps, np.r_[replayed[-1], knots.lrs[1:]], knots.tolerance, knots.evaluations)
        if last - first < _MAX_STAIRS:
            return self._stairs(lr_of_epochs, first, last, replayed[-1], end, horizon)
        knots = sample_knots(lr_of_epochs, first, last, scale=peak)
        if knots is None:
            return None
        # Each sampled period's LR at its first step, a ramp to the next: off by up to a stair within a period of
        # each change (the bisection puts the changes one period apart), where `exact_lr` answers the live check.
        steps = np.clip(self._first_step(knots.steps), end, horizon)
        steps[0], steps[-1] = end, horizon
        steps, keep = np.unique(steps, return_index=True)
        return SampledKnots(steps, np.r_[replayed[-1], knots.lrs[1:]][keep], knots.tolerance, knots.evaluations)

    def _first_step(self, epochs: np.ndarray) -> np.ndarray:
        """The first run step at which the scheduler's step count is ``epochs``."""
        period = self.periods[0]
        return (epochs - self.first_epochs[0] + self.start // period) * period

    def _stairs(
        self,
        lr_of_epochs: Callable[[np.ndarray], np.ndarray],
        first: int,
        last: int,
        lr_at_end: float,
        end: int,
        horizon: int,
    ) -> SampledKnots:
        """Every period from ``end`` to ``horizon`` as a flat stair: knots at its first and last step (the replayed
        step's own stair from ``end`` on, at its replayed LR)."""
        epochs = np.arange(first, last + 1)
        lrs = np.r_[lr_at_end, lr_of_epochs(epochs[1:])]
        begin = self._first_step(epochs)
        finish = np.minimum(begin + self.periods[0] - 1, horizon)
        begin[0] = end
        steps, keep = np.unique(np.column_stack([begin, finish]).ravel(), return_index=True)  # a 1-step stair: 1 knot
        return SampledKnots(steps, np.repeat(lrs, 2)[keep], 0.0, len(epochs) - 1)
