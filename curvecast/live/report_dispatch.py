"""ReportDispatch: the actuators of a run, the stop they decide, and the hand-off of every report to them."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from curvecast._lightning import optimizer_step_index
from curvecast.failsafe import warn_once
from curvecast.forecasting import Report
from curvecast.forecasting.stop_request import StopReason, StopRequest
from curvecast.history import RunHistory
from curvecast.integrations.actuator import Actuator, RunContext
from curvecast.integrations.alerts import Alert, publish_alert

__all__ = ["ReportDispatch"]


class ReportDispatch:
    """Hand each report to the run's actuators: first ask them for a stop decision, announce the first one, put it on
    the report, then let every actuator act on the completed report. One failing actuator is a warning and never
    silences the others.

    Args:
        history: the run's history (the series each report carries, as read-only views).
        run_context: the run's settings, bound to each actuator.
        to_tensorboard: announce a stop in TensorBoard as well as on the ``curvecast`` logger.

    Attributes:
        actuators: the actuators, in the order they act.
        checkpointed: the actuators whose state the bundle keeps in its own.
        reports: the most recent reports (kept without their ``series``).
        last_report: the latest report with a forecast, or None.
        stop: the stop decided in this fit, or None.
    """

    def __init__(self, history: RunHistory, run_context: RunContext, to_tensorboard: bool) -> None:
        self.history = history
        self.run_context = run_context
        self.to_tensorboard = to_tensorboard
        self.actuators: list[Actuator] = []
        self.checkpointed: list[Actuator] = []
        self.reports: deque[Report] = deque(maxlen=100)
        self.last_report: Report | None = None
        self.stop: StopRequest | None = None

    def attach(self, actuator: Actuator, *, save_state: bool = True) -> None:
        """Have ``actuator`` act on the reports (once), bound to the run's context."""
        if not isinstance(actuator, Actuator):
            raise TypeError(
                f"Expected an actuator to subclass curvecast.Actuator, but got {type(actuator).__name__}"
            )
        if any(a is actuator for a in self.actuators):
            return
        self.actuators.append(actuator)
        if save_state and actuator.state_name is not None:
            self.checkpointed.append(actuator)
        actuator.bind(self.run_context)

    def dispatch(self, trainer: Any, pl_module: Any, report: Report, last: bool = False) -> None:
        """Collect a stop decision on ``report``, announce it, then hand the completed report to every actuator."""
        # The series as of now (read-only views, rebuilt only where new points came): a forecast made in the worker
        # is reported with everything recorded while it ran, and a decision reads the values the report stands on.
        series = {name: self.history.series(name) for name in self.history.names()}
        report = replace(report, run_step=optimizer_step_index(trainer, after_step=True), series=series)
        stop = self._decide(report) if self.stop is None else None
        if stop is not None:
            self.stop = stop
            alert = Alert("early_stop", stop.step, "warning", stop.message, source="early_stopping")
            publish_alert(trainer, alert, tensorboard=self.to_tensorboard)
        at_horizon = report.horizon is not None and report.step >= report.horizon - 1
        last = last or at_horizon or self.stop is not None or bool(getattr(trainer, "should_stop", False))
        report = replace(report, stop=stop, is_last=last)
        # Kept without their series: a hundred snapshots of every series would cost memory in proportion to the run.
        self.reports.append(replace(report, series={}))
        if report.forecast is not None:
            self.last_report = self.reports[-1]
        for actuator in self.actuators:
            try:
                actuator.on_report(trainer, pl_module, report)
            except Exception as error:  # noqa: BLE001 - one failing actuator must not silence the others
                _actuator_failed(actuator, error)

    def _decide(self, report: Report) -> StopRequest | None:
        """The first stop an actuator decides on ``report``, or None."""
        for actuator in self.actuators:
            try:
                stop = actuator.decide(report)
            except Exception as error:  # noqa: BLE001 - a failing rule must not stop the run, nor its reports
                _actuator_failed(actuator, error)
                continue
            if stop is not None:
                if not isinstance(stop, StopRequest):
                    stop = StopRequest(StopReason.REQUESTED, int(report.step), str(getattr(stop, "message", stop)))
                return stop
        return None


def _actuator_failed(actuator: Actuator, error: Exception) -> None:
    name = type(actuator).__name__
    warn_once(f"curvecast: {name} failed on a report and was skipped ({type(error).__name__}: {error})",
              key=f"actuator-{name}")  # fmt: skip
