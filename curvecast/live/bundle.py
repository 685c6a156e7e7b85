"""Curvecast: the one-line callback that wires the sensors, the brain and the actuators together."""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from curvecast._lightning import Callback, fitting, is_global_zero, optimizer_step_index, several_players
from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.loss_capture import LossCapture
from curvecast.callbacks.lr_capture import LearningRateCapture
from curvecast.callbacks.sensor import Sensor
from curvecast.callbacks.throughput import Throughput
from curvecast.failsafe import guarded
from curvecast.forecasting import Report
from curvecast.forecasting.metric_map import check_mode_bounds
from curvecast.forecasting.real_values import check_flag
from curvecast.forecasting.stop_request import StopRequest
from curvecast.history import RunHistory
from curvecast.integrations.actuator import Actuator, RunContext
from curvecast.integrations.advice import HyperparameterAdvisor
from curvecast.integrations.alerts import AlertLogger
from curvecast.integrations.early_stopping import ForecastEarlyStopping
from curvecast.integrations.forecast_log import ForecastLogger
from curvecast.integrations.loggers import LoggerForwarder
from curvecast.integrations.loggers.selection import LoggerChoice
from curvecast.integrations.tensorboard import TensorBoardReporter
from curvecast.live.bundle_parts import (
    checked_every,
    checked_monitor,
    checked_target,
    finite_guard,
    forwarder,
    part,
)
from curvecast.live.bundle_state import bundle_state, restore_bundle_state, restore_other_monitors_state
from curvecast.live.cadence import DEFAULT_BUDGET, ForecastCadence
from curvecast.live.monitor_checks import (
    monitor_missing,
    say_if_validated_too_rarely,
    say_monitor_awaited,
    warn_if_no_loss,
    warn_monitor_never_logged,
)
from curvecast.live.reference_source import ReferenceSource, check_reference_source, references_for_fit
from curvecast.live.report_dispatch import ReportDispatch
from curvecast.live.run_brain import RunBrain
from curvecast.live.sensor_hooks import SensorHooks, forward, zero_grad_forwarder
from curvecast.live.stability_watch import StabilityWatch
from curvecast.metric_direction import metric_direction
from curvecast.series import TRAIN_LOSS

__all__ = ["Curvecast"]

# The parts of the bundle's state that belong to its monitor: a resume with another monitor starts them afresh.


class Curvecast(Callback):
    """Watch a live run: capture its loss and LR schedule, forecast where the loss is going, and act on it.

    ``Trainer(callbacks=[Curvecast()])`` is all it takes, in both Lightning flavours and in ``LightningCLI``.

    Args:
        monitor: the metric to forecast; None means the training loss of every optimizer step. A validation metric
            (e.g. ``"val_loss"``) is forecast after each validation run.
        mode: ``"min"`` when lower is better, ``"max"`` otherwise; None reads it from the monitor's name (``val_acc``,
            ``val_f1``, ``reward`` are better high; a loss and anything else low).
        target: a value of ``monitor`` the run should reach; forecasts then give the step and probability to reach it.
        forecast_every: optimizer steps between forecasts of the training loss.
        background: forecast off the training thread (in the forecast process, ``curvecast/fit_process.py``), so the
            training step never waits for a fit; False fits inline (deterministic, for tests).
        forecast_budget: the largest share of the run's time spent forecasting (forecasts are spaced further apart than
            ``forecast_every`` when a fit is slow next to the steps); None forecasts every ``forecast_every`` steps.
        gradient_noise: measure the gradient noise scale and the gradient norm (True for the
            defaults, or a configured :class:`~curvecast.callbacks.GradientNoiseScale`; False to skip).
        throughput: time every step (True, a configured :class:`~curvecast.callbacks.Throughput`, or False).
        early_stopping: stop the run when the forecast says ``target`` is out of reach (or, without a target, that
            no improvement is left), or on a confirmed divergence or non-finite loss (True, a configured
            :class:`~curvecast.integrations.ForecastEarlyStopping`, or False).
        advice: hyperparameter advice as alerts (True, a configured
            :class:`~curvecast.integrations.HyperparameterAdvisor`, or False).
        alerts: send anomalies to Python logging and TensorBoard's ``curvecast/alerts`` (True, a configured
            :class:`~curvecast.integrations.AlertLogger`, or False).
        tensorboard: write forecasts and the curvecast tab's data to the Trainer's TensorBoard logger (True,
            a configured :class:`~curvecast.integrations.TensorBoardReporter`, or False: then the default alerts and
            advice go to Python logging only).
        log_forecasts: each forecast as one line on the ``"curvecast"`` logger and in the progress bar (True, a
            configured :class:`~curvecast.integrations.ForecastLogger`, or False).
        loggers: send the forecast scalars (final, interval, chance of the target) and the alerts to the Trainer's
            other loggers through Lightning's logger API, in the form each shows best: a table of alerts and W&B
            alerts to a ``WandbLogger``, a text artifact and run tags to an ``MLFlowLogger``, the scalars alone to any
            other. True or ``"all"``: every logger but the TensorBoard logger curvecast writes to; a list of logger
            classes, names (``"wandb"``, ``"mlflow"``) or logger objects; a configured
            :class:`~curvecast.integrations.loggers.LoggerForwarder`; or False (the default).
        actuators: more :class:`~curvecast.integrations.actuator.Actuator` objects acting on each report (an actuator
            that is also a Lightning ``Callback`` may instead sit beside the bundle in ``Trainer(callbacks=[...])``).
        bounds: the range of ``monitor``, ``(lo, hi)`` with None for an open side: ``(0, 1)`` for an accuracy keeps its
            forecasts and intervals inside it (the good side's bound is the floor a forecast approaches). None: (0, 1)
            or (0, 100) for an accuracy-like score whose values lie there, else open.
        references: finished runs of the same recipe, whose shape informs the forecast: a log directory of past runs
            (TensorBoard or CSVLogger; the run's own logs are left out), an Optuna study (its completed trials, read
            at the start of each fit), or a list of :class:`~curvecast.forecasting.Reference`.

    Attributes:
        history: the run's :class:`~curvecast.history.RunHistory` (saved in checkpoints, restored on resume).
        last_report: the latest report with a forecast, or None.
        reports: the most recent reports (a bounded deque; kept without their ``series``, which actuators read as
            each report arrives).
        stop: the stop decided in this fit (a :class:`~curvecast.forecasting.stop_request.StopRequest`), or None.
        brain: the :class:`~curvecast.live.run_brain.RunBrain` between the sensors and the actuators: the detectors,
            the forecast cadence (also ``cadence``) and the ranks' stop vote.

    Example::

        >>> import lightning as L
        >>> curvecast = Curvecast(target=2.1, early_stopping=True)
        >>> trainer = L.Trainer(max_steps=1000, callbacks=[curvecast])     # doctest: +SKIP
        >>> trainer.fit(model, train_loader)                               # doctest: +SKIP
        >>> curvecast.last_report.forecast.interval(0.8)                   # doctest: +SKIP
        (1.98, 2.12)
    """

    def __init__(
        self,
        monitor: str | None = None,
        *,
        mode: Literal["min", "max"] | None = None,
        target: float | None = None,
        forecast_every: int = 100,
        background: bool = True,
        forecast_budget: float | None = DEFAULT_BUDGET,
        gradient_noise: bool | GradientNoiseScale = True,
        throughput: bool | Throughput = True,
        early_stopping: bool | ForecastEarlyStopping = False,
        advice: bool | HyperparameterAdvisor = True,
        alerts: bool | AlertLogger = True,
        tensorboard: bool | TensorBoardReporter = True,
        log_forecasts: bool | ForecastLogger = True,
        loggers: bool | LoggerChoice | LoggerForwarder = False,
        actuators: list[Actuator] | None = None,
        bounds: tuple[float | None, float | None] | None = None,
        references: ReferenceSource | None = None,
    ) -> None:
        self.monitor = checked_monitor(monitor) or TRAIN_LOSS
        self.mode = mode = mode or metric_direction(self.monitor)[0]
        check_mode_bounds(mode, bounds)
        self.references = check_reference_source(references)
        self.target = checked_target(target)
        self.forecast_every = checked_every(forecast_every)
        self.background = background = check_flag(background, "background")
        self.history = RunHistory()
        self.loss_capture = LossCapture(self.history, train_metric=None if self.monitor == TRAIN_LOSS else self.monitor)
        self.lr_capture = LearningRateCapture(self.history)
        # In the bundle the sensors' series reach TensorBoard through the reporter, a bounded number per report, and
        # nothing is added to the user's other loggers (a CSVLogger's metrics.csv); a configured sensor decides itself.
        self.gradient_noise = part(gradient_noise, GradientNoiseScale, "gradient_noise", log_metrics=False)
        self.throughput = part(throughput, Throughput, "throughput", log_metrics=False)
        # Throughput first: its clock stops at the end of a batch before the other parts' work, which
        # `own_work_done` then keeps out of the data wait.
        self.sensors: list[Sensor] = [
            s for s in (self.throughput, self.loss_capture, self.lr_capture, self.gradient_noise) if s is not None
        ]
        for sensor in self.sensors:
            sensor.record_into(self.history)
        self._hooks = SensorHooks(self.sensors)  # the per-step hooks each sensor defines, looked up once
        forward_zero_grad = zero_grad_forwarder(self.sensors)
        if forward_zero_grad is not None:  # a configured sensor of a subclass that acts there: on this instance alone
            self.on_before_zero_grad = forward_zero_grad
        self.run_context = RunContext(self.monitor, mode, target, forecast_every)
        to_tensorboard = tensorboard is not False and tensorboard is not None  # False: no alert in TensorBoard either
        self.early_stopping = part(early_stopping, ForecastEarlyStopping, "early_stopping", tensorboard=to_tensorboard)
        self.alerts = part(alerts, AlertLogger, "alerts", tensorboard=to_tensorboard)
        self.advice = part(advice, HyperparameterAdvisor, "advice", tensorboard=to_tensorboard)
        self.tensorboard = part(tensorboard, TensorBoardReporter, "tensorboard")
        self.forecast_logger = part(log_forecasts, ForecastLogger, "log_forecasts")
        # The band every other logger shows is TensorBoard's.
        self.logger_forwarder = forwarder(loggers, self.tensorboard)
        # With early stopping on a non-finite loss, the run stops at the step the loss turns NaN, before its update
        # (decided again at the start of training, when a stopper placed beside the bundle has been attached).
        self.finite_guard = finite_guard([self.early_stopping, *(actuators or [])])
        self._reports = ReportDispatch(self.history, self.run_context, to_tensorboard)
        builtin = (self.early_stopping, self.alerts, self.advice, self.tensorboard, self.forecast_logger,
                   self.logger_forwarder)  # fmt: skip
        for actuator in (*builtin, *(actuators or [])):
            if actuator is not None:
                self.attach(actuator)
        self.cadence = ForecastCadence(
            self.history, self.lr_capture.schedule, self.lr_capture.run_length, self.monitor, target, forecast_every,
            background, forecast_budget, mode, bounds,
        )  # fmt: skip
        self.brain = RunBrain(self.history, self._new_watch(), self.cadence, self._reports, self.lr_capture.schedule,
                              self.loss_capture, self.forecast_every, background, self.finite_guard)  # fmt: skip
        self._monitor_checked = False
        self._state_key: str | None = None
        self._restore_state = True  # False from a checkpoint loaded to validate or test (see on_load_checkpoint)

    def attach(self, actuator: Actuator, *, save_state: bool = True) -> None:
        """Have ``actuator`` act on this run's reports (once), bound to the run's context.

        Args:
            save_state: keep the actuator's state (when it has a ``state_name``) in the bundle's checkpoint state;
                False for an actuator that is also a callback of the Trainer, which checkpoints it already.
        """
        self._reports.attach(actuator, save_state=save_state)

    @property
    def actuators(self) -> list[Actuator]:
        return self._reports.actuators

    @property
    def reports(self) -> deque[Report]:
        return self._reports.reports

    @property
    def last_report(self) -> Report | None:
        return self._reports.last_report

    @property
    def stop(self) -> StopRequest | None:
        return self._reports.stop

    @property
    def watch(self) -> StabilityWatch:
        """The anomaly detectors, every point recorded so far handed to them and scored."""
        return self.brain.watch

    def _new_watch(self) -> StabilityWatch:
        return StabilityWatch(self.monitor, self.mode, pair_grad_norm=self.gradient_noise is not None)

    @property
    def state_key(self) -> str:
        # Lightning reads it at every hook call (to name the hook in its profiler): built once, as monitor is fixed.
        if self._state_key is None:
            self._state_key = self._generate_state_key(monitor=self.monitor)
        return self._state_key

    # -- sensors: every hook is forwarded to each sensor (each guards itself) -------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for sensor in self.sensors:
            sensor.setup(trainer, pl_module, stage)
        for callback in trainer.callbacks:  # actuators placed beside the bundle, not yet taken by another bundle
            if isinstance(callback, Actuator) and callback.run is None:
                self.attach(callback, save_state=False)  # the Trainer checkpoints a callback itself

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.brain.new_fit()
        self._monitor_checked = False
        for sensor in self.sensors:
            sensor.on_fit_start(trainer, pl_module)
        for actuator in self.actuators:
            actuator.on_fit_start(trainer, pl_module)  # e.g. a stop request left from a previous fit is cleared
        self._load_references(trainer)

    @guarded
    def _load_references(self, trainer: Any) -> None:
        if is_global_zero(trainer):  # rank 0 alone forecasts
            self.cadence.references = references_for_fit(self.references, trainer, self.monitor, self.mode)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_train_start(trainer, pl_module)
        self._hooks = SensorHooks(self.sensors)  # without the hooks a sensor is idle in for this fit
        self.finite_guard = self.brain.finite_guard = finite_guard(self.actuators, self.finite_guard)
        self.brain.start(trainer)
        self.brain.watch.several_players(several_players(trainer, pl_module))
        for actuator in self.actuators:
            actuator.on_train_start(trainer, pl_module)
        self._say_if_too_few_points(trainer)

    @guarded
    def _say_if_too_few_points(self, trainer: Any) -> None:
        say_if_validated_too_rarely(trainer, self.monitor, self.cadence.min_points)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        forward(self._hooks["on_train_batch_start"], trainer, pl_module, batch, batch_idx)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        forward(self._hooks["on_before_backward"], trainer, pl_module, loss)
        if self.finite_guard is not None:
            self.finite_guard.on_before_backward(loss)

    def on_after_backward(self, trainer: Any, pl_module: Any) -> None:
        forward(self._hooks["on_after_backward"], trainer, pl_module)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        forward(self._hooks["on_before_optimizer_step"], trainer, pl_module, optimizer)
        if self.finite_guard is not None:
            self.brain.guard_finite(trainer, pl_module, optimizer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        forward(self._hooks["on_train_batch_end"], trainer, pl_module, outputs, batch, batch_idx)
        self.brain.think(trainer, pl_module, at_validation=False)
        self.brain.batch_done()
        if self.throughput is not None:
            self.throughput.own_work_done()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_validation_end(trainer, pl_module)
        # A standalone `validate()` trains nothing: no monitor to wait for, no point of the run's curve to think on.
        if not trainer.sanity_checking and fitting(trainer):
            self._check_monitor(trainer)
            self.brain.think(trainer, pl_module, at_validation=True)

    @guarded
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.lr_capture.on_train_epoch_start(trainer, pl_module)  # a loader reloaded with another length moves the end
        self.brain.watch.epoch_started(optimizer_step_index(trainer))  # an int: safe beside the scorer's thread

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_train_epoch_end(trainer, pl_module)
        if not sum(getattr(trainer, "num_val_batches", None) or [0]):  # no validation: this is the first chance
            self._check_monitor(trainer)
        warn_if_no_loss(self.monitor, self.history, self.loss_capture.steps_without_loss, trainer, pl_module)

    @guarded
    def _check_monitor(self, trainer: Any) -> None:
        if not self._monitor_checked:
            self._monitor_checked = True
            self._flush_sensors()
            available = monitor_missing(self.monitor, self.history, trainer.callback_metrics)
            if available is not None and is_global_zero(trainer):
                say_monitor_awaited(self.monitor, available)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        for sensor in self.sensors:
            sensor.on_train_end(trainer, pl_module)
        self.brain.final_report(trainer, pl_module)
        self._warn_if_monitor_never_logged(trainer)

    @guarded
    def _warn_if_monitor_never_logged(self, trainer: Any) -> None:
        available = monitor_missing(self.monitor, self.history, trainer.callback_metrics)
        if available is not None and is_global_zero(trainer):
            warn_monitor_never_logged(self.monitor, available)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for sensor in self.sensors:
            sensor.teardown(trainer, pl_module, stage)
        self._close_workers()

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """The run failed: Lightning finalizes the loggers next, and calls no teardown hook. What the worker threads
        and the actuators hold (reports being written, alerts not yet sent) is finished first, within bounds, and the
        sensors take their hooks off the model and the loop."""
        for sensor in self.sensors:
            sensor.on_exception(trainer, pl_module, exception)
        self._close_workers()

    def _close_workers(self) -> None:
        """Safe to call twice."""
        self.brain.close()
        for actuator in self.actuators:
            actuator.close()

    # -- checkpoint state (the brain is RunBrain's, the actuators' dispatch ReportDispatch's) ------------------------

    def _stateful_parts(self) -> dict[str, Any]:
        """The parts whose state the bundle checkpoints, by name (the history is saved once, for all of them)."""
        parts: dict[str, Any] = {"watch": self.watch}
        for sensor in self.sensors:
            if sensor.state_name is not None:
                parts[sensor.state_name] = sensor
        for actuator in self._reports.checkpointed:
            parts[actuator.state_name] = actuator
        return parts

    def _flush_sensors(self) -> None:
        for sensor in self.sensors:
            sensor.flush_pending()

    def state_dict(self) -> dict[str, Any]:
        self._flush_sensors()
        self.brain.scorer.score_now()  # the saved detectors have seen every point of the saved history
        return bundle_state(self.history, self._stateful_parts())

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """A checkpoint of a run that watched another monitor has no state under this bundle's key: keep what does not
        depend on the monitor, and say what was dropped (Lightning would drop it all, silently). `validate`/`test` from
        a checkpoint restore callbacks too: a run that has trained keeps its history then."""
        self._restore_state = fitting(trainer)
        if self._restore_state:
            self._load_other_monitors_state(checkpoint.get("callbacks"))

    @guarded
    def _load_other_monitors_state(self, states: Any) -> None:
        restore_other_monitors_state(states, self.state_key, self.history, self._stateful_parts(), self.monitor)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a saved state part by part; a part that cannot be read starts afresh, with a warning. Not while the
        Trainer validates or tests from a checkpoint (the history of the run stays as it was)."""
        restore, self._restore_state = self._restore_state, True
        if not restore:
            return
        if "watch" in restore_bundle_state(self.history, self._stateful_parts(), state_dict):
            self.brain.watch = self._new_watch()  # told the schedule at the next step
