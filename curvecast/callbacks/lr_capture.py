"""LearningRateCapture: the LR of every optimizer step, and the planned LR of every step still to come."""

from __future__ import annotations

from typing import Any

import numpy as np

from curvecast._lightning import optimizer_step_index
from curvecast.callbacks.schedule_replay import PlannedSchedule, replay_schedule, run_horizon
from curvecast.callbacks.sensor import Sensor
from curvecast.failsafe import guarded, warn_once
from curvecast.forecasting.schedule import LRSchedule
from curvecast.history import RunHistory
from curvecast.series import LR

__all__ = ["LearningRateCapture"]


class LearningRateCapture(Sensor):
    """Record the LR each optimizer step used, and replay the schedulers to learn the LR of every future step.

    The LR is read in ``on_before_optimizer_step`` (the value the step is about to use) from the first param group of
    the first optimizer; reading a Python float costs no device sync.

    Args:
        history: where to record (series ``"lr"``); a new one by default.
    """

    def __init__(self, history: RunHistory | None = None) -> None:
        super().__init__(history)
        self.horizon: int | None = None
        self.planned: PlannedSchedule | None = None
        self._schedule: LRSchedule | None = None

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._schedule = None
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

    def run_length(self) -> int | None:
        """The step the run ends at (``max_steps``), once training has started; None while unknown."""
        return self.horizon

    def schedule(self) -> LRSchedule | None:
        """The LR of every step ``0..horizon``: recorded where the run has been, planned where it is going; or None.

        Built once per fit (the past it joins is fixed when training starts) and shared, read-only, by every
        forecast and detector: at 10 million steps a copy is 80 MB.
        """
        if self._schedule is None:
            lrs = self._join_past_and_planned()
            self._schedule = None if lrs is None else LRSchedule(lrs)
        return self._schedule

    def _join_past_and_planned(self) -> np.ndarray | None:
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

    def state_dict(self) -> dict[str, Any]:
        return self._save_history({})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._load_history(state_dict)
