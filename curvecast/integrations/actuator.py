"""Actuator: the base of what acts on reports, and RunContext, the settings of the run an actuator acts on.

Data flows one way: sensors record into the run's history, the brain turns it into :class:`~curvecast.forecasting.
Report` objects, and actuators act on the reports. The Report is all an actuator reads of the run: the forecast, the
anomalies, the observed and best values, the LR so far and planned, the chance of the target, the stop decided. An
actuator never re-fits, never reads the history and never reaches into the bundle or into another actuator.

To add an actuator: subclass :class:`Actuator`, override the hooks it needs (each default does nothing), and pass it
as ``Curvecast(actuators=[MyActuator()])`` or put it beside the bundle in ``Trainer(callbacks=[...])`` when it is also
a Lightning ``Callback``: the bundle takes every unbound actuator among the Trainer's callbacks at setup. Hooks, in the
order the bundle calls them:

- :meth:`bind` once, when the bundle takes the actuator: keep the run's settings;
- :meth:`on_fit_start` at the start of every fit: drop decisions left from a previous fit;
- :meth:`on_train_start` once the loops are restored: ``trainer.global_step`` is the step this fit starts from;
- :meth:`decide` for each report, on rank 0 only, while no stop has been decided: return a
  :class:`~curvecast.forecasting.stop_request.StopRequest` to stop the run. The bundle collects the first decision,
  announces it, has every rank vote on it (all ranks stop together under DDP), and puts it on the report as
  ``report.stop``;
- :meth:`on_report` for each report (with ``stop`` and ``is_last`` filled in), on rank 0 only;
- :meth:`close` at teardown: release files and writers.

An actuator with state across a resume implements ``state_dict``/``load_state_dict`` (plain Python types) and the
bundle keeps it in its checkpoint state, under the actuator's :attr:`Actuator.state_name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curvecast.forecasting.report import Report
from curvecast.forecasting.stop_request import StopRequest

__all__ = ["Actuator", "RunContext"]


@dataclass(frozen=True)
class RunContext:
    """The settings of the run an actuator acts on (what it may know before the first report).

    Attributes:
        monitor: the series forecast and watched.
        mode: ``"min"`` when lower is better for ``monitor``, ``"max"`` otherwise.
        target: the value of ``monitor`` the run should reach, or None.
        forecast_every: optimizer steps between forecasts of the training loss.

    Example::

        >>> RunContext(monitor="val_loss", target=0.3)
        RunContext(monitor='val_loss', mode='min', target=0.3, forecast_every=100)
    """

    monitor: str
    mode: str = "min"
    target: float | None = None
    forecast_every: int = 100


class Actuator:
    """Acts on each :class:`~curvecast.forecasting.Report` of a live run; every hook defaults to doing nothing.

    Attributes:
        run: the :class:`RunContext` given by :meth:`bind`, or None before.
        state_name: the key of this actuator's state in the bundle's checkpoint state (None: no state kept).

    Example::

        >>> class Journal(Actuator):
        ...     def on_report(self, trainer, pl_module, report):
        ...         print(report.step, report.observed)
        >>> Journal().on_report(None, None, Report(step=3, monitor="loss", observed=2.5))
        3 2.5
    """

    run: RunContext | None = None
    state_name: str | None = None

    def bind(self, run: RunContext) -> None:
        """Take the run's settings (called once, when the bundle takes this actuator)."""
        self.run = run

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """A fit starts: forget decisions left from a previous one."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """The loops are restored: ``trainer.global_step`` is the step this fit starts from."""

    def decide(self, report: Report) -> StopRequest | None:
        """Whether the run should stop on ``report`` (rank 0 only; asked until some actuator decides)."""
        return None

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        """Act on one report (rank 0 only)."""

    def close(self) -> None:
        """Release what the actuator holds open (safe to call twice)."""
