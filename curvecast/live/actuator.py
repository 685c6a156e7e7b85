"""Actuator: the base of what acts on reports, and RunContext, the part of the run an actuator may read.

Data flows one way: sensors record into the run's history, the brain turns it into :class:`~curvecast.forecasting.
Report` objects, and actuators act on the reports. An actuator never re-fits and never reaches into the bundle or into
another actuator: what it may read of the run is its :class:`RunContext`, handed to :meth:`Actuator.bind`.

To add an actuator: subclass :class:`Actuator`, override the hooks it needs (each default does nothing), and pass it
as ``Curvecast(actuators=[MyActuator()])``, or give the bundle a ``bool | instance`` argument for it when it is one of
the built-in ones. Hooks, in the order the bundle calls them:

- :meth:`bind` once, when the bundle takes the actuator: keep the context;
- :meth:`on_fit_start` at the start of every fit: drop decisions left from a previous fit;
- :meth:`on_train_start` once the loops are restored: ``trainer.global_step`` is the step this fit starts from;
- :meth:`on_report` for each report, on rank 0 only (the one process that forecasts and writes);
- :meth:`close` at teardown: release files and writers.

An actuator asks the run to stop by setting :attr:`Actuator.stop_request` (an object with a ``message``); the bundle
has every rank vote on it, so all ranks stop together under DDP. An actuator with state across a resume implements
``state_dict``/``load_state_dict`` (plain Python types) and the bundle keeps it in its checkpoint state, under the
actuator's :attr:`Actuator.state_name`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curvecast.forecasting.report import Report
from curvecast.forecasting.schedule import LRSchedule
from curvecast.history import RunHistory

__all__ = ["Actuator", "RunContext"]


class RunContext:
    """What an actuator may read of the run it acts on.

    Args:
        history: the run's history (every recorded series: the monitor, ``lr``, ``gns/b_simple``, throughput).
        monitor: the series forecast and watched.
        mode: ``"min"`` when lower is better for ``monitor``, ``"max"`` otherwise.
        target: the value of ``monitor`` the run should reach, or None.
        forecast_every: optimizer steps between forecasts of the training loss.
        planned_schedule: returns the LR of every step ``0..horizon`` once the fit has started, or None.
        stop_requested: returns whether some actuator has asked the run to stop.

    Example:
        >>> run = RunContext(RunHistory(), monitor="val_loss", mode="min", target=0.3)
        >>> run.monitor, run.planned_schedule(), run.stop_requested()
        ('val_loss', None, False)
    """

    def __init__(
        self,
        history: RunHistory,
        monitor: str,
        mode: str = "min",
        target: float | None = None,
        forecast_every: int = 100,
        planned_schedule: Callable[[], LRSchedule | None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        self.history = history
        self.monitor = monitor
        self.mode = mode
        self.target = target
        self.forecast_every = forecast_every
        self._planned_schedule = planned_schedule
        self._stop_requested = stop_requested

    def planned_schedule(self) -> LRSchedule | None:
        """The LR of every step ``0..horizon`` (recorded, then planned), once the fit has started; or None."""
        return None if self._planned_schedule is None else self._planned_schedule()

    def stop_requested(self) -> bool:
        """Whether some actuator has asked the run to stop."""
        return False if self._stop_requested is None else bool(self._stop_requested())


class Actuator:
    """Acts on each :class:`~curvecast.forecasting.Report` of a live run; every hook defaults to doing nothing.

    Attributes:
        run: the :class:`RunContext` given by :meth:`bind`, or None before.
        stop_request: None, or an object with a ``message`` once the run should stop.
        state_name: the key of this actuator's state in the bundle's checkpoint state (None: no state kept).
    """

    run: RunContext | None = None
    stop_request: Any = None
    state_name: str | None = None

    def bind(self, run: RunContext) -> None:
        """Take the run's context (called once, when the bundle takes this actuator)."""
        self.run = run

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """A fit starts: forget decisions left from a previous one."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """The loops are restored: ``trainer.global_step`` is the step this fit starts from."""

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        """Act on one report (rank 0 only)."""

    def close(self) -> None:
        """Release what the actuator holds open (safe to call twice)."""
