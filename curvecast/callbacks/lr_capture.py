"""LearningRateCapture: the LR of every optimizer step, and the planned LR of every step still to come."""

from __future__ import annotations

from typing import Any

import numpy as np

from curvecast._lightning import Callback, guarded, optimizer_step_index, warn_once
from curvecast.callbacks.schedule_replay import PlannedSchedule, replay_schedule, run_horizon
from curvecast.history import RunHistory

__all__ = ["LearningRateCapture"]

LR = "lr"


class LearningRateCapture(Callback):
    """Record the LR each optimizer step used, and replay the schedulers to learn the LR of every future step.

    The LR is read in ``on_before_optimizer_step`` (the value the step is about to use) from the first param group of
    the first optimizer; reading a Python float costs no device sync.

    Args:
        history: where to record (series ``"lr"``); a new one by default.
    """

    def __init__(self, history: RunHistory | None = None) -> None:
        self.history = history if history is not None else RunHistory()
        self.horizon: int | None = None
        self.planned: PlannedSchedule | None = None
        self._schedule: np.ndarray | None = None
        self._min_ahead: np.ndarray | None = None

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._schedule = self._min_ahead = None
        self.horizon = run_horizon(trainer)
        start = int(trainer.global_step)
        if self.horizon is None:
            self.planned = PlannedSchedule(start, None, "the run length is unknown (no max_steps, unsized loader)")
        else:
            self.planned = replay_schedule(trainer, start, self.horizon)
        if not self.planned.known:
            warn_once(f"curvecast: forecasting without the LR schedule: {self.planned.reason}", key="lr-schedule")

    @guarded
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if trainer.optimizers and optimizer is not trainer.optimizers[0]:
            return  # manual optimization with several optimizers: follow the first one
        self.history.append(LR, optimizer_step_index(trainer), float(optimizer.param_groups[0]["lr"]))

    def schedule(self) -> np.ndarray | None:
        """LR at every step ``0..horizon``: recorded where the run has been, planned where it is going; or None.

        Built once per fit (the past it joins is fixed when training starts) and shared, read-only, by every
        forecast: at 10 million steps a copy is 80 MB.
        """
        if self._schedule is None:
            self._schedule = self._build_schedule()
            if self._schedule is not None:
                self._schedule.flags.writeable = False
        return self._schedule

    def _build_schedule(self) -> np.ndarray | None:
        if self.planned is None or not self.planned.known or self.horizon is None:
            return None
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

    def lr_drop_ahead(self, step: int, ratio: float = 0.5) -> bool:
        """Whether the planned LR falls below ``ratio`` times its value at ``step`` before the run ends."""
        lrs = self.schedule()
        if lrs is None or step >= len(lrs):
            return False
        step = max(step, 0)
        if self._min_ahead is None or len(self._min_ahead) != len(lrs):
            self._min_ahead = np.minimum.accumulate(lrs[::-1])[::-1]  # min LR from each step on, built once
        return bool(lrs[step] > 0 and self._min_ahead[step] < ratio * lrs[step])

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history.load_state_dict(state_dict["history"])
