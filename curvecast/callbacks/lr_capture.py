"""LearningRateCapture: the LR of every optimizer step, and the planned LR of every step still to come."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from curvecast._lightning import StepReader, host_cadence, is_global_zero
from curvecast.callbacks.measures.schedule_replay import (
    PlannedSchedule,
    epochs_of_unsized_loader,
    replay_schedule,
    run_horizon,
    steps_per_epoch,
    unknown_length_reason,
)
from curvecast.callbacks.measures.schedule_source import ScheduleSource
from curvecast.callbacks.measures.time_limit import TimeLimit
from curvecast.callbacks.sensor import Sensor
from curvecast.failsafe import guarded, log, tell_once, warn_once
from curvecast.forecasting.schedule import MAX_DENSE_STEPS, LRSchedule
from curvecast.history import RunHistory
from curvecast.series import LR
from curvecast.state_checks import checked_mapping

__all__ = ["LearningRateCapture"]

# A time limit's end is planned again when its estimate moves by more than this share: the pace sways by a few percent
# between looks, and each plan replays the schedule.
TIME_REPLAN = 0.02


class LearningRateCapture(Sensor):
    """Record the LR each optimizer step used, and replay the schedulers to learn the LR of every future step.

    The LR is read in ``on_before_optimizer_step`` (the value the step is about to use) from the first param group of
    the first optimizer; reading a Python float costs no device sync. The LRs are recorded in batches, at the losses'
    cadence (:func:`~curvecast._lightning.host_cadence`), at validation and at the end. Each is compared with the
    planned LR of its step
    (O(1), or O(log knots) past the replayed steps). Where they differ because the run's schedulers changed (a callback
    such as ``StochasticWeightAveraging`` swapped in its own, a ``LearningRateFinder`` searched again and set the LR,
    the optimizers were set up again: see :mod:`~curvecast.callbacks.measures.schedule_source`), the schedule is
    planned again from that step with the new schedulers, said in one line. An LR changed outside Lightning's
    scheduler stepping with nothing of that changed (a scheduler stepped by hand in ``training_step`` or
    ``optimizer_step``, an LR set directly) makes the schedule unknown, with one warning.

    The run's last step (``horizon``) is ``max_steps``, or Lightning's estimate from ``max_epochs``; where that is
    unknown or moves it is estimated, and the schedule replayed to it again: from the epochs so far (a loader with no
    length), from an epoch's new length (a loader reloaded, accumulation scheduled by epoch) and from the pace of the
    steps under a time limit (``max_time``: :mod:`~curvecast.callbacks.measures.time_limit`), the nearest end first.

    Args:
        history: where to record (series ``"lr"``); a new one by default.
    """

    def __init__(self, history: RunHistory | None = None) -> None:
        super().__init__(history)
        self.horizon: int | None = None
        self.planned: PlannedSchedule | None = None
        self._schedule: LRSchedule | None = None
        self._pending: list[tuple[int, float]] = []  # (step, LR) read but not yet recorded
        self._flush_every = 1
        self._first: Any = None  # the optimizer whose LR is followed
        self._others: tuple[Any, ...] = ()  # the other optimizers at the start (manual optimization): not followed
        self._steps: StepReader | None = None  # the Trainer's step counters, from the start of training
        self._trainer: Any = None
        self._source: ScheduleSource | None = None  # what `planned` was replayed from
        self._estimated = False  # the horizon is estimated: from the epochs so far (a loader with no length), or time
        self._limit: int | None = None  # the step the run's step or epoch limit ends it at, or None
        self._limit_estimated = False  # that step is estimated from the epochs so far (a loader with no length)
        self._time: TimeLimit | None = None  # the run's time limit (`max_time`), if it has one
        self._time_end: int | None = None  # the step the run will have reached when its time runs out, last estimated
        self._time_said = False  # the time limit's end was said to be the one forecast to
        self._set_by_hand = False  # the plan was dropped for an LR changed outside the schedulers
        self._per_epoch: int | None = None  # the training loader's steps an epoch, as the end was last planned with

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._schedule = None
        self._pending = []
        self._flush_every = host_cadence(trainer)  # recorded and checked in batches, as the losses are
        self._steps = StepReader(trainer)
        self._trainer = trainer
        optimizers = getattr(trainer, "optimizers", None)
        # Read once: a property walk. A callback may set the optimizers up again mid-fit: see on_before_optimizer_step.
        self._first = optimizers[0] if optimizers else None
        self._others = tuple(optimizers[1:]) if optimizers else ()
        self._source = ScheduleSource.of(trainer)
        self.horizon = self._limit = run_horizon(trainer)
        self._estimated = self._limit_estimated = self._set_by_hand = False
        self._time, self._time_end, self._time_said = TimeLimit.of(trainer), None, False
        self._per_epoch = steps_per_epoch(trainer)
        start = int(trainer.global_step)
        if self.horizon is None:
            reason = unknown_length_reason(trainer)
            self.planned = PlannedSchedule(start, None, reason)
            if self._time is not None:
                if is_global_zero(trainer):
                    tell_once("curvecast: the run ends at its time limit (`max_time`): forecasts start once the pace "
                              "of its steps is known, to the step it will have reached then")  # fmt: skip
                return
            if epochs_of_unsized_loader(trainer):
                # Known once an epoch has ended (a streaming dataset): nothing to fix, said at info.
                if is_global_zero(trainer):
                    tell_once(f"curvecast: {reason}: forecasts start once an epoch has ended, taking every epoch "
                              "as long as the ones before (`max_steps` gives the length from the start)")  # fmt: skip
                return
            # No horizon, no forecast at all (anomalies are still watched): said as such, with the fix.
            warn_once(f"curvecast: no forecasts in this run: {reason}. Set `max_steps` (or `max_epochs` with a "
                      "sized training loader) to have them.", key="run-length")  # fmt: skip
            return
        self.planned = replay_schedule(trainer, start, self.horizon)
        if not self.planned.known:
            self._without_schedule(f"curvecast: forecasting without the LR schedule: {self.planned.reason}")

    def _without_schedule(self, said: str) -> None:
        """Say that the forecasts go without the planned LRs: a warning where something can be done about it, an info
        line (rank 0) where the scheduler cannot be known ahead by its nature (every ReduceLROnPlateau run was
        warned)."""
        if not self.planned.by_design:
            warn_once(said, key="lr-schedule")
        elif is_global_zero(self._trainer):
            tell_once(said)

    @guarded
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._first is not None and optimizer is not self._first and not self._became_first(optimizer):
            return  # manual optimization with several optimizers: follow the first one
        self._pending.append((self._steps.index(), float(optimizer.param_groups[0]["lr"])))
        if len(self._pending) >= self._flush_every:
            self.flush_pending()

    def _became_first(self, optimizer: Any) -> bool:
        """Whether ``optimizer``, not the one followed, is now the Trainer's first (a callback set the optimizers up
        again): it is followed from now on. The others known at the start are told apart without a property walk."""
        if any(optimizer is other for other in self._others):
            return False
        optimizers = getattr(self._trainer, "optimizers", None)
        if optimizers and optimizers[0] is optimizer:
            self._first = optimizer
            self._others = tuple(optimizers[1:])
            return True
        self._others += (optimizer,)
        return False

    def flush_pending(self) -> None:
        """Record the LRs read since the last call, each compared with the plan."""
        pending, self._pending = self._pending, []
        for step, lr in pending:
            self.history.append(LR, step, lr)
            self._compare_with_plan(step, lr)
        if self._time is not None:
            self._horizon_from_time()

    @guarded
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self.flush_pending()

    @guarded
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if (self._limit is None or self._limit_estimated) and epochs_of_unsized_loader(trainer):
            self._horizon_from_epochs(trainer)

    @guarded
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        per_epoch = steps_per_epoch(trainer)
        if per_epoch is None or per_epoch == self._per_epoch or self._per_epoch is None:
            return
        self._per_epoch = per_epoch
        max_steps, max_epochs = int(getattr(trainer, "max_steps", -1) or -1), getattr(trainer, "max_epochs", None)
        if max_steps > 0 or max_epochs is None or max_epochs <= 0:
            return  # the end is the step limit's, or none
        self._horizon_from_reloaded_loader(trainer, per_epoch, int(max_epochs))

    def _horizon_from_reloaded_loader(self, trainer: Any, per_epoch: int, max_epochs: int) -> None:
        """A training loader reloaded with another length (``reload_dataloaders_every_n_epochs``, a curriculum that
        grows its data), or batches accumulated in another number (``GradientAccumulationScheduler``): Lightning's
        estimate of the run's steps read the first epoch's. The end is the steps taken so far and the epochs to come,
        each as long as this one."""
        done = self._steps.index()  # at an epoch's start: the steps of the epochs before it
        self._limit = done + per_epoch * max(max_epochs - int(trainer.current_epoch), 0)
        self._limit_estimated = True
        if self._plan_to_nearest_end() and is_global_zero(trainer):
            log.info("curvecast: an epoch now takes %d optimizer steps: forecasting to step %d, the epochs to come "
                     "taken as long as this one", per_epoch, self.horizon)  # fmt: skip

    def _horizon_from_epochs(self, trainer: Any) -> None:
        """``max_epochs`` of a training loader with no length: the run's length is the steps of the epochs so far,
        per epoch, times ``max_epochs`` (a streaming dataset yields about as many batches every epoch), estimated
        again at each epoch's end; the schedule is replayed from here to there when the estimate moves."""
        done, epochs = self._steps.index(), int(trainer.current_epoch) + 1  # the epoch ending is counted from here
        if done <= 0:
            return
        self._limit, self._limit_estimated = max(round(done / epochs * int(trainer.max_epochs)), done), True
        first = self.horizon is None
        if not self._plan_to_nearest_end() or not is_global_zero(trainer):
            return
        if first:
            took = "the first epoch" if epochs == 1 else f"{epochs} epochs"
            log.info("curvecast: %s took %d steps: forecasting to step %d (`max_epochs=%d`)", took, done, self.horizon,
                     trainer.max_epochs)  # fmt: skip
        else:
            log.info("curvecast: %d epochs took %d steps: forecasting to step %d", epochs, done, self.horizon)

    def _horizon_from_time(self) -> None:
        """A run with a time limit: the step it will have reached when its time runs out, where that comes before
        the end its step or epoch limit gives. Planned again only when the estimate moves by more than
        ``TIME_REPLAN`` of it (a replay costs up to a second on a long run)."""
        step = self._steps.index()
        last = self._time.last_step(step)
        if last is None or (self._time_end is not None and abs(last - self._time_end) <= TIME_REPLAN * self._time_end):
            return
        self._time_end = last
        moved = self._plan_to_nearest_end()
        if moved and self.horizon == last and not self._time_said and is_global_zero(self._trainer):
            self._time_said = True  # said once: the end moves with the pace at every look after
            log.info("curvecast: %d steps in %.1f s: forecasting to step %d, where the time limit (`max_time`) ends "
                     "the run", step, self._time.timer.time_elapsed(), self.horizon)  # fmt: skip

    def _plan_to_nearest_end(self) -> bool:
        """Forecast to the nearer of the ends the step or epoch limit and the time limit give (False: no change)."""
        ends = ((self._limit, self._limit_estimated), (self._time_end, True))
        known = [(end, estimated) for end, estimated in ends if end is not None]
        return bool(known) and self._plan_to(*min(known))

    def _plan_to(self, horizon: int, estimated: bool) -> bool:
        """Forecast to ``horizon`` from here on, the schedule replayed from the current step to it (False: it was the
        horizon already)."""
        if horizon == self.horizon:
            self._estimated = estimated
            return False
        first, self.horizon, self._estimated = self.horizon is None, horizon, estimated
        self._schedule = None
        if not self._set_by_hand:  # an LR set by hand stays unplannable: a replay would disagree with it again
            self.planned = replay_schedule(self._trainer, self._steps.index(), horizon)
        if first and not self.planned.known:
            self._without_schedule(f"curvecast: forecasting without the LR schedule: {self.planned.reason}")
        return True

    @guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.flush_pending()
        out_of_time = self._time is not None and self._time.ran_out()
        if self._estimated and (out_of_time or not getattr(trainer, "should_stop", False)):
            # Its epochs done, or its time: the run ended where it was going, and the step it ended at is the end.
            self._plan_to(self._steps.index(), estimated=False)

    def _compare_with_plan(self, step: int, lr: float) -> None:
        planned = self.planned
        value = None if planned is None else planned.disagreement(step, lr)
        if value is None:
            return
        change = None if self._source is None else self._source.change(self._trainer)
        if change is not None:
            self._plan_again(step, change)
            return
        reason = (
            f"the LR of step {step} is {lr:.6g}, not the planned {value:.6g}: it was changed outside Lightning's "
            "scheduler stepping (a scheduler stepped by hand in training_step or optimizer_step, or an LR set directly)"
        )
        self.planned = replace(planned, lrs=None, tail=None, reason=reason, exact_lr=None)
        self._schedule, self._set_by_hand = None, True
        warn_once(f"curvecast: forecasting without the LR schedule: {reason}", key="lr-schedule-changed")

    def _plan_again(self, step: int, change: str) -> None:
        """Replay the new schedulers from the step the optimizer's LR is now set for (every hook that flushes runs
        after Lightning stepped the schedulers for the steps taken), as at the start of training."""
        trainer = self._trainer
        self._source = ScheduleSource.of(trainer)
        start = self._steps.index()  # in on_before_optimizer_step the current step; after it, the next one
        self.planned, self._schedule = replay_schedule(trainer, start, self.horizon), None
        self._set_by_hand = False
        said = f"the LR schedule changed at step {step} ({change})"
        if not self.planned.known:
            self._without_schedule(f"curvecast: forecasting without the LR schedule: {said}: {self.planned.reason}")
        elif is_global_zero(trainer):
            log.info("curvecast: %s: forecasting with the new plan", said)

    def run_length(self) -> int | None:
        """The step the run ends at (``max_steps``), once training has started; None while unknown, and while a run
        whose length is estimated (from its epochs, its loader's new length or its time limit) has gone past the
        estimate: an epoch longer than the ones before is no end of the run, and no forecast is made to a step already
        behind it."""
        if self._estimated and self.horizon is not None and self._steps.index() > self.horizon:
            return None
        return self.horizon

    def schedule(self) -> LRSchedule | None:
        """The LR of every step ``0..horizon``: recorded where the run has been, planned where it is going; or None.

        Built once per plan (the past it joins is fixed when the plan starts: at the start of training, or where the
        schedulers changed) and shared, read-only, by every forecast and detector: a new plan is a new object, which
        the detectors are handed at their next look (``RunBrain._follow_schedule``). Dense (one LR per step) when
        the whole run was replayed; in knots otherwise, so its size does not grow with the run length (a dense copy
        at 10 million steps is 80 MB).
        """
        if self._schedule is None and self.planned is not None and self.planned.known and self.horizon is not None:
            if self.planned.tail is None and self.horizon < MAX_DENSE_STEPS:
                self._schedule = LRSchedule(self._join_past_and_planned())
            else:
                self._schedule = LRSchedule.from_knots(*self._knots_of_past_and_planned())
        return self._schedule

    def _join_past_and_planned(self) -> np.ndarray:
        lrs = np.empty(self.horizon + 1, dtype=np.float64)
        start = self.planned.start
        lrs[start:] = self.planned.lrs
        if start > 0:
            if LR not in self.history:
                lrs[:start] = self.planned.lrs[0]  # resumed without a recorded past: the nearest known LR
            else:
                past = self.history.series(LR)
                lrs[:start] = np.interp(np.arange(start), past.steps, past.values)
        return lrs

    def _knots_of_past_and_planned(self) -> tuple[np.ndarray, np.ndarray]:
        """Knots of the recorded past (the history's points, bounded), the replayed steps and the jumped-to tail."""
        planned, start = self.planned, self.planned.start
        steps = [np.arange(start, planned.end + 1)]
        lrs = [planned.lrs]
        if start > 0:
            if LR not in self.history:
                past_steps = np.unique([0, start - 1])
                past_lrs = np.full(len(past_steps), planned.lrs[0])  # resumed without a recorded past
            else:
                past = self.history.series(LR)
                recorded = np.clip(np.round(past.steps), 0, start - 1)
                past_steps = np.unique(np.r_[0, recorded, start - 1]).astype(np.int64)
                past_lrs = np.interp(past_steps, past.steps, past.values)
            steps.insert(0, past_steps)
            lrs.insert(0, past_lrs)
        if planned.tail is not None:  # its first knot is the last replayed step
            steps.append(planned.tail.steps[1:])
            lrs.append(planned.tail.lrs[1:])
        return np.concatenate(steps), np.concatenate(lrs)

    def state_dict(self) -> dict[str, Any]:
        self.flush_pending()
        return self._save_history({})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._load_history(checked_mapping("the LearningRateCapture state", state_dict))
