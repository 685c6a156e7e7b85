"""LoggerForwarder: the forecasts and alerts of a live run, sent to the Trainer's other loggers (W&B, MLflow, ...).

curvecast writes its forecasts and alerts into the Trainer's TensorBoard logger. This actuator sends the same to the
other loggers, through Lightning's logger API, in the form each shows best (see
:mod:`curvecast.integrations.loggers.sinks`):

- the forecast scalars of each report, under the names TensorBoard has them (``curvecast/forecast/final``,
  ``final_lo``, ``final_hi``, and with a target ``prob_target`` and ``step_to_target``), at the report's step, and
  ``curvecast/early_stopping/stopped`` = 1 at the step a stop was decided: to every chosen logger;
- the alerts of each report, its anomalies and its stop, each once: as a table and a W&B alert to a ``WandbLogger``,
  as a text artifact and run tags to an ``MLFlowLogger``; other loggers get none. Like every actuator it reads the
  Report alone: the advisor's advice, which no report carries, stays in Python logging and TensorBoard.

A logger that fails (raises, is offline, its disk is full) is one :class:`~curvecast.failsafe.CurvecastWarning` per
logger class; the others still get the report, and the run goes on.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from curvecast._lightning import Callback
from curvecast.failsafe import warn_once
from curvecast.forecasting.report import Report
from curvecast.integrations.actuator import Actuator
from curvecast.integrations.alerts import SEVERITIES, Alert
from curvecast.integrations.forecast_scalars import forecast_scalars
from curvecast.integrations.loggers.selection import LoggerChoice, check_choice, choose_loggers, describe
from curvecast.integrations.loggers.sinks import MetricsSink, sink_for
from curvecast.series import FORECAST_PREFIX, STOPPED_TAG

__all__ = ["LoggerForwarder"]


class LoggerForwarder(Actuator, Callback):
    """Actuator: each report's forecast scalars and alerts to the Trainer's other loggers (rank 0, where reports are).

    Use it through the bundle, ``Curvecast(loggers="all")``, or beside it in the Trainer's callbacks (the bundle takes
    it at setup).

    Args:
        loggers: ``"all"``: every logger of the Trainer but the TensorBoard logger curvecast writes to; or a list of
            logger classes (``WandbLogger``), names (``"wandb"``, ``"mlflow"``, ``"csv"``: a logger class or base
            class of that name, with or without ``Logger``, in any case, so either Lightning flavour matches) and
            logger objects.
        interval: probability of the central interval sent as ``final_lo`` / ``final_hi`` (as TensorBoard's).
        min_severity: alerts below this severity are not sent.
        max_alerts: the most recent alerts kept for the W&B table and the MLflow text artifact, which are rewritten
            whole as alerts arrive.

    Attributes:
        alerts: the most recent alerts sent (at most ``max_alerts``).
        sent: how many alerts were sent in all.

    Example::

        >>> from curvecast import Curvecast
        >>> forwarder = LoggerForwarder(["wandb", "mlflow"])
        >>> callbacks = [Curvecast(target=2.1), forwarder]   # Trainer(callbacks=callbacks, logger=[...])
        >>> forwarder.loggers
        ('wandb', 'mlflow')
    """

    def __init__(
        self,
        loggers: LoggerChoice = "all",
        *,
        interval: float = 0.8,
        min_severity: str = "info",
        max_alerts: int = 200,
    ) -> None:
        self.loggers = check_choice(loggers)
        if not 0.0 < interval < 1.0:
            raise ValueError(f"Expected `interval` to lie in (0, 1), but got {interval}")
        if min_severity not in SEVERITIES:
            raise ValueError(f"Expected `min_severity` to be one of {SEVERITIES}, but got {min_severity!r}")
        if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 1:
            raise ValueError(f"Expected `max_alerts` to be a positive int, but got {max_alerts!r}")
        self.interval = interval
        self.min_severity = min_severity
        self.alerts: deque[Alert] = deque(maxlen=max_alerts)
        self.sent = 0
        self._sinks: list[MetricsSink] | None = None  # chosen at the start of each fit
        self._pending: list[Alert] = []  # heard since the last report, sent with the next one
        self._seen: dict[tuple[str, int, str, str], None] = {}  # insertion-ordered: the oldest go first
        self._last_scalar_step = -1
        self._last_step = 0

    # -- the run --------------------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Choose the loggers. Called twice when the forwarder is also a Trainer callback (by Lightning and by the
        bundle): the second call changes nothing."""
        self._start(trainer)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.run is None:  # every bundle has taken its actuators at setup: none took this one
            warn_once(
                "curvecast: LoggerForwarder sends Curvecast's forecasts and alerts, but the Trainer has no Curvecast "
                "callback; add `Curvecast(...)` to `callbacks`, or use `Curvecast(loggers=...)`.",
                key="logger-forwarder-alone",
            )

    def _start(self, trainer: Any) -> None:
        chosen, unmatched = choose_loggers(trainer, self.loggers)
        self._sinks = [sink_for(logger) for logger in chosen]
        self._last_scalar_step = -1
        present = ", ".join(type(logger).__name__ for logger in getattr(trainer, "loggers", None) or []) or "none"
        if unmatched:
            warn_once(
                f"curvecast: loggers=[{', '.join(describe(e) for e in unmatched)}] matches none of the Trainer's "
                f"loggers ({present}; the TensorBoard logger curvecast writes to is left out, as it has the "
                "forecasts already); forecasts and alerts go to the others chosen.",
                key="logger-forwarder-unmatched",
            )
        elif not chosen:
            warn_once(
                f"curvecast: the Trainer has no logger to send forecasts and alerts to besides the TensorBoard logger "
                f"curvecast writes to (its loggers: {present}); add one, e.g. `logger=[TensorBoardLogger(...), "
                "WandbLogger(...)]`.",
                key="logger-forwarder-none",
            )

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        if self._sinks is None:  # a report without a fit start (a bundle driven by hand)
            self._start(trainer)
        if report.stop is not None:  # the alert the bundle announces it with, before the actuators see the report
            stop = report.stop
            self._take(Alert("early_stop", int(stop.step), "warning", stop.message, source="early_stopping"))
        for anomaly in report.anomalies:
            self._take(Alert(anomaly.kind, int(anomaly.step), anomaly.severity, anomaly.message, source="anomaly"))
        self._last_step = max(self._last_step, int(report.step))
        for step, metrics in self._metrics(report):
            for sink in self._sinks:
                self._send(sink, sink.log_metrics, metrics, step)
        self._flush()

    def _take(self, alert: Alert) -> None:
        """Take one alert of a report, to be sent once (a resumed run's reports may repeat one)."""
        if SEVERITIES.index(alert.severity) < SEVERITIES.index(self.min_severity):
            return
        key = (alert.kind, int(alert.step), alert.severity, alert.message)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > 10 * (self.alerts.maxlen or 1):  # bounded memory on a very long, very noisy run
            del self._seen[next(iter(self._seen))]
        self._pending.append(alert)

    def close(self) -> None:
        """Send the alerts taken and not yet sent (the bundle calls it at teardown, before Lightning finalizes the
        loggers; safe to call twice)."""
        self._flush()
        self._sinks = None

    # -- pieces ---------------------------------------------------------------------------------------------------

    def _metrics(self, report: Report) -> list[tuple[int, dict[str, float]]]:
        """The scalars to log, by step: the forecast's (steps only move forward, as TensorBoard's), and the stop."""
        by_step: dict[int, dict[str, float]] = {}
        forecast = report.forecast
        if forecast is not None and forecast.ok and report.step > self._last_scalar_step:
            self._last_scalar_step = int(report.step)
            scalars = forecast_scalars(report, self.interval)
            by_step[int(report.step)] = {FORECAST_PREFIX + name: value for name, value in scalars.items()}
        if report.stop is not None:
            by_step.setdefault(int(report.stop.step), {})[STOPPED_TAG] = 1.0
        return sorted(by_step.items())

    def _flush(self) -> None:
        if not self._pending or not self._sinks:
            self._pending.clear()
            return
        new, self._pending = self._pending, []
        self.alerts.extend(new)
        self.sent += len(new)
        kept = list(self.alerts)
        for sink in self._sinks:
            self._send(sink, sink.log_alerts, new, kept, self.sent, self._last_step)

    @staticmethod
    def _send(sink: MetricsSink, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Exception as error:  # noqa: BLE001 - a logger that fails must not stop the run, nor the other loggers
            warn_once(
                f"curvecast: could not send forecasts or alerts to {sink.name} ({type(error).__name__}: {error}); "
                "training goes on, and each later report tries again.",
                key=f"logger-forwarder-{sink.name}",
            )
