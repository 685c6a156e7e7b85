"""Curvecast: the one-line callback that wires the sensors, the brain and the actuators together."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Literal, Protocol

from curvecast._lightning import Callback, guarded, is_global_zero, warn_once
from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.loss_capture import TRAIN_LOSS, LossCapture
from curvecast.callbacks.lr_capture import LearningRateCapture
from curvecast.callbacks.throughput import Throughput
from curvecast.forecast_cadence import ForecastCadence
from curvecast.forecasting import Report
from curvecast.history import RunHistory
from curvecast.integrations import AlertLogger, ForecastEarlyStopping, HyperparameterAdvisor, TensorBoardReporter
from curvecast.stability_watch import StabilityWatch

__all__ = ["Actuator", "Curvecast"]

log = logging.getLogger("curvecast")

_STATE_VERSION = 1
_MODES = ("min", "max")


class Actuator(Protocol):
    """What acts on reports. ``stop_request`` (None, or an object with a ``message``) asks the run to stop."""

    stop_request: Any

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None: ...


def _component(choice: Any, cls: type, **defaults: Any) -> Any:
    """A part of the bundle: built with defaults (True), given (an instance), or left out (False)."""
    if choice is False or choice is None:
        return None
    if choice is True:
        return cls(**defaults)
    if not isinstance(choice, cls):
        raise TypeError(f"Expected a bool or a {cls.__name__}, but got {type(choice).__name__}")
    return choice


def _sensor(choice: Any, cls: type, history: RunHistory) -> Any:
    """A sensor recording into the bundle's history."""
    sensor = _component(choice, cls, history=history)
    if sensor is not None:
        sensor.history, sensor._owns_history = history, False
    return sensor


class Curvecast(Callback):
    """Watch a live run: capture its loss and LR schedule, forecast where the loss is going, and act on it.

    ``Trainer(callbacks=[Curvecast()])`` is all it takes; pass it inside a list (works with both
    ``lightning.pytorch.Trainer`` and ``pytorch_lightning.Trainer``).

    Args:
        monitor: the metric to forecast; None means the training loss of every optimizer step. A validation metric
            (e.g. ``"val_loss"``) is forecast after each validation run.
        mode: ``"min"`` when lower is better, ``"max"`` otherwise.
        target: a value of ``monitor`` the run should reach; forecasts then give the step and probability to reach it.
        forecast_every: optimizer steps between forecasts of the training loss.
        background: forecast in a worker thread so the training step never waits for a fit.
        gradient_noise: measure the gradient noise scale and the gradient norm of every step (True for the
            defaults, or a configured :class:`~curvecast.callbacks.GradientNoiseScale`; False to skip).
        throughput: time every step (True, a configured :class:`~curvecast.callbacks.Throughput`, or False).
        early_stopping: stop the run when the forecast says ``target`` is out of reach (or, without a target, that
            no improvement is left), or on a confirmed divergence or non-finite loss (True, a configured
            :class:`~curvecast.integrations.ForecastEarlyStopping`, or False).
        advice: hyperparameter advice as alerts (True, a configured
            :class:`~curvecast.integrations.HyperparameterAdvisor`, or False).
        tensorboard: write forecasts, alerts, figures and a summary to the Trainer's TensorBoard logger.
        actuators: extra objects acting on each :class:`~curvecast.forecasting.Report` (see :class:`Actuator`).

    Attributes:
        history: the run's :class:`~curvecast.history.RunHistory` (saved in checkpoints, restored on resume).
        last_report: the latest report with a forecast, or None.
        reports: the most recent reports (a bounded deque).
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
        target: float | None = None,
        forecast_every: int = 100,
        background: bool = True,
        gradient_noise: bool | GradientNoiseScale = True,
        throughput: bool | Throughput = True,
        early_stopping: bool | ForecastEarlyStopping = False,
        advice: bool | HyperparameterAdvisor = True,
        tensorboard: bool = True,
        actuators: list[Actuator] | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"Expected `mode` to be one of {_MODES}, but got {mode!r}")
        if forecast_every < 1:
            raise ValueError(f"Expected `forecast_every` to be a positive int, but got {forecast_every}")
        self.monitor = monitor or TRAIN_LOSS
        self.mode = mode
        self.target = target
        self.forecast_every = forecast_every
        self.background = background
        self.history = RunHistory()
        self.loss_capture = LossCapture(self.history)
        self.lr_capture = LearningRateCapture(self.history)
        self.gradient_noise = _sensor(gradient_noise, GradientNoiseScale, self.history)
        self.throughput = _sensor(throughput, Throughput, self.history)
        self.sensors: list[Callback] = [
            s for s in (self.loss_capture, self.lr_capture, self.gradient_noise, self.throughput) if s is not None
        ]
        self.watch = self._new_watch()
        self.history.add_listener(self._on_point)
        # The stopper goes first, so a stop and its alert precede the forecast scalars of the same step.
        self.early_stopping = _component(early_stopping, ForecastEarlyStopping)
        builtin = [self.early_stopping, AlertLogger(), _component(advice, HyperparameterAdvisor)]
        builtin.append(TensorBoardReporter() if tensorboard else None)
        self.actuators: list[Actuator] = [a for a in builtin if a is not None] + list(actuators or [])
        for actuator in self.actuators:
            if callable(getattr(actuator, "bind", None)):
                actuator.bind(self)
        self.last_report: Report | None = None
        self.reports: deque[Report] = deque(maxlen=100)
        self.cadence = ForecastCadence(self.history, self.lr_capture, self.monitor, target, forecast_every, background)
        self._voted_at: int | None = None

    def _new_watch(self) -> StabilityWatch:
        return StabilityWatch(self.monitor, self.mode, pair_grad_norm=self.gradient_noise is not None)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor)

    # -- sensors: every hook is forwarded to each sensor (each guards itself) -------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for sensor in self.sensors:
            sensor.setup(trainer, pl_module, stage)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._voted_at = None
        for part in (*self.sensors, *self.actuators):
            if callable(getattr(part, "on_fit_start", None)):
                part.on_fit_start(trainer, pl_module)  # e.g. a stop request left from a previous fit is cleared

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_train_start(trainer, pl_module)
        self.watch.set_schedule(self.lr_capture.schedule())
        for actuator in self.actuators:
            if callable(getattr(actuator, "on_train_start", None)):
                actuator.on_train_start(trainer, pl_module)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        for sensor in self.sensors:
            sensor.on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        for sensor in self.sensors:
            sensor.on_before_backward(trainer, pl_module, loss)

    def on_after_backward(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_after_backward(trainer, pl_module)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for sensor in self.sensors:
            sensor.on_before_optimizer_step(trainer, pl_module, optimizer)

    def on_before_zero_grad(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for sensor in self.sensors:
            sensor.on_before_zero_grad(trainer, pl_module, optimizer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        for sensor in self.sensors:
            sensor.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._think(trainer, pl_module, at_validation=False)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking:
            self._think(trainer, pl_module, at_validation=True)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_train_end(trainer, pl_module)
        self._final_report(trainer, pl_module)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for sensor in self.sensors:
            sensor.teardown(trainer, pl_module, stage)
        self.cadence.close()
        for actuator in self.actuators:
            if callable(getattr(actuator, "close", None)):
                actuator.close()

    # -- brain: anomalies as points arrive, forecasts on a cadence (see ForecastCadence) --------------------------

    def _on_point(self, name: str, step: int, value: float) -> None:
        try:
            self.watch.feed(name, step, value)
        except Exception as error:  # noqa: BLE001 - a detector failure must not lose the point or stop the sensor
            warn_once(f"curvecast: anomaly detection failed and was skipped ({type(error).__name__}: {error})")

    def _think(self, trainer: Any, pl_module: Any, at_validation: bool) -> None:
        # Rank 0's work is guarded on its own: a failure there must not make rank 0 skip the vote, a collective
        # the other ranks are already waiting in.
        self._rank_zero_work(trainer, pl_module, at_validation)
        self._vote_stop(trainer)

    @guarded
    def _rank_zero_work(self, trainer: Any, pl_module: Any, at_validation: bool) -> None:
        anomalies = self.watch.collect()  # every rank detects (it is cheap); rank 0 reports
        if not is_global_zero(trainer):
            return
        if anomalies:
            self._dispatch(trainer, pl_module, self.cadence.report(anomalies[-1].step, anomalies=tuple(anomalies)))
        self._collect(trainer, pl_module)  # before submitting: a new job replaces the finished one's result
        self.cadence.submit_if_due(at_validation)
        self._collect(trainer, pl_module)  # inline jobs are done already

    def _collect(self, trainer: Any, pl_module: Any) -> None:
        report = self.cadence.poll()
        if report is not None:
            self._dispatch(trainer, pl_module, report)

    @guarded
    def _final_report(self, trainer: Any, pl_module: Any) -> None:
        if is_global_zero(trainer):
            for report in self.cadence.finish():
                self._dispatch(trainer, pl_module, report)

    # -- actuators --------------------------------------------------------------------------------------------------

    def _dispatch(self, trainer: Any, pl_module: Any, report: Report) -> None:
        self.reports.append(report)
        if report.forecast is not None:
            self.last_report = report
        for actuator in self.actuators:
            try:
                actuator.on_report(trainer, pl_module, report)
            except Exception as error:  # noqa: BLE001 - one failing actuator must not silence the others
                log.warning("curvecast: %s failed on a report: %s", type(actuator).__name__, error)

    def _vote_stop(self, trainer: Any) -> None:
        """Every rank votes at the same steps; rank 0 carries the forecast, so any rank asking stops all of them."""
        step = int(trainer.global_step)
        if trainer.world_size > 1 and (step % self.forecast_every != 0 or step == self._voted_at):
            return  # a collective per micro-batch would cost every step a round trip between ranks
        self._voted_at = step
        local = any(getattr(a, "stop_request", None) is not None for a in self.actuators)
        if trainer.strategy.reduce_boolean_decision(local, all=False):
            trainer.should_stop = True

    # -- checkpoint state -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        self.loss_capture.flush_pending()
        state = {"version": _STATE_VERSION, "history": self.history.state_dict(), "watch": self.watch.state_dict()}
        for name in ("gradient_noise", "throughput", "early_stopping"):
            part = getattr(self, name)
            if part is not None:
                state[name] = part.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a saved state; one that cannot be read is a warning and a fresh start, never a failed resume."""
        try:
            self.history.load_state_dict(state_dict["history"])
            if "watch" in state_dict:
                self.watch.load_state_dict(state_dict["watch"])
            for name in ("gradient_noise", "throughput", "early_stopping"):
                part = getattr(self, name)
                if part is not None and name in state_dict:
                    part.load_state_dict(state_dict[name])
        except (KeyError, ValueError, TypeError) as error:
            warn_once(f"curvecast: the checkpoint's curvecast state could not be restored ({error}); starting afresh")
            self.history.load_state_dict(RunHistory().state_dict())
            self.watch = self._new_watch()
