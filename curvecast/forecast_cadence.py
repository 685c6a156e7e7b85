"""ForecastCadence: when the bundle forecasts, what a forecast reads, and the Report it hands to the actuators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from curvecast.callbacks.loss_capture import TRAIN_LOSS
from curvecast.callbacks.lr_capture import LearningRateCapture
from curvecast.forecast_runner import ForecastRunner
from curvecast.forecasting import Forecaster, Report
from curvecast.history import RunHistory

__all__ = ["ForecastCadence"]


class ForecastCadence:
    """Forecast ``monitor`` every ``forecast_every`` steps (the training loss) or after each validation (any other
    metric), in a worker thread when ``background``, so the training step never waits for a fit.

    The training thread snapshots what a fit needs (immutable views of the history, the shared read-only LR
    schedule) and the worker reads only that snapshot.
    """

    def __init__(
        self,
        history: RunHistory,
        lr_capture: LearningRateCapture,
        monitor: str,
        target: float | None,
        forecast_every: int,
        background: bool,
    ) -> None:
        self.history = history
        self.lr_capture = lr_capture
        self.monitor = monitor
        self.target = target
        self.forecast_every = forecast_every
        self._runner: ForecastRunner[Report] = ForecastRunner(background)
        self._last_step: int | None = None  # the last observed step a forecast was started from

    def submit_if_due(self, at_validation: bool) -> None:
        if self._due(at_validation):
            self._runner.submit(self._job())

    def poll(self) -> Report | None:
        """The report of the last finished forecast, once; None while one runs or when there is nothing new."""
        return self._runner.poll()

    def finish(self) -> list[Report]:
        """At the end of training: the forecast in flight, then one from the last observed point if it is newer."""
        reports = [r for r in (self._runner.drain(),) if r is not None]
        last = self.history.last(self.monitor)
        if last is not None and last[0] != self._last_step:
            self._last_step = last[0]
            reports.append(self._job()())
        return reports

    def close(self) -> None:
        self._runner.close()

    def report(self, step: int, anomalies: tuple = ()) -> Report:
        """A report at ``step`` without a forecast (anomalies travel in these between forecasts)."""
        return Report(
            step=step,
            monitor=self.monitor,
            horizon=self.lr_capture.horizon,
            anomalies=anomalies,
            target=self.target,
            lr_schedule_known=self.lr_capture.schedule() is not None,
            lr_drop_ahead=self.lr_capture.lr_drop_ahead(step),
        )

    def _due(self, at_validation: bool) -> bool:
        last = self.history.last(self.monitor)
        if last is None or last[0] == self._last_step:
            return False
        if self.monitor == TRAIN_LOSS:
            due = last[0] - (self._last_step or 0) >= self.forecast_every
        else:
            due = at_validation
        if due:
            self._last_step = last[0]
        return due

    def _job(self) -> Callable[[], Report]:
        series = self.history.series(self.monitor)  # immutable arrays: safe to read from another thread
        horizon = self.lr_capture.horizon
        lrs = self.lr_capture.schedule()
        blank = self.report(int(series.steps[-1]))

        def job() -> Report:
            if horizon is None or horizon < blank.step:
                return blank
            forecast = Forecaster().fit(series.steps, series.values, horizon=horizon, lrs=lrs, counts=series.counts)
            return replace(blank, forecast=forecast)

        return job
