"""ForecastEarlyStopping: stop a run when its forecast says the target is out of reach, or it diverged.

The decision is :class:`~curvecast.integrations.stop_rule.ForecastStopRule`'s; this actuator feeds it the live reports,
announces the stop (Python logging, the TensorBoard text tag ``curvecast/alerts`` and the scalar
``curvecast/early_stopping/stopped``) and raises ``stop_request``. The :class:`~curvecast.Curvecast` bundle then has
every rank vote with ``trainer.strategy.reduce_boolean_decision``, so all ranks stop at the same step, mid-epoch too.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from curvecast._lightning import Callback, tensorboard_writer
from curvecast.failsafe import warn_once
from curvecast.forecasting.report import Report
from curvecast.integrations.alerts import Alert, publish_alert
from curvecast.integrations.stop_rule import ForecastStopRule, StopReason, StopRequest
from curvecast.live.actuator import Actuator, RunContext
from curvecast.series import LR, STOPPED_TAG

__all__ = ["ForecastEarlyStopping", "StopReason", "StopRequest"]


class ForecastEarlyStopping(Actuator, Callback):
    """Stop training early on the forecast: target out of reach, no improvement left, divergence, non-finite loss.

    Use it through the bundle, ``Curvecast(target=3.2, early_stopping=True)``, or next to it,
    ``Trainer(callbacks=[Curvecast(target=3.2), ForecastEarlyStopping(prob_threshold=0.1)])``: it then attaches itself
    to the bundle at setup. The arguments are :class:`~curvecast.integrations.stop_rule.ForecastStopRule`'s.

    Args:
        monitor: the series the bundle forecasts; None takes the bundle's (a different one is an error: the
            forecasts this acts on are of the bundle's ``monitor``).
        target: the value to reach; None takes the bundle's target.
        mode: ``"min"`` or ``"max"``; None takes the bundle's mode.
        prob_threshold: stop when the chance of reaching the target at the horizon is below this.
        patience: consecutive forecasts a forecast-based reason must hold.
        min_delta: without a target, the smallest improvement still worth the remaining steps.
        min_delta_mode: ``"abs"`` or ``"rel"`` (a fraction of the current value).
        min_progress: fraction of the run before a forecast-based stop.
        pre_decay_scale: before a known LR decay is well under way, the target check widens the forecast's interval
            this many times (how much the decay will bring is what the curve so far shows least); None holds the stop
            until the decay is well under way.
        check_finite: stop when the monitored series becomes NaN or infinite.
        stop_on_divergence: stop on a divergence the anomaly detector confirmed.
        assume_constant_lr: when the LR schedule is unknown (ReduceLROnPlateau, manual schedulers), treat it as
            constant; by default a drop may then come just as the curve flattens: the target check trusts the
            forecast (its interval allows for an unseen decay) on ``unknown_lr_extra_patience`` more checks, and the
            check without a target is held.
        unknown_lr_extra_patience: the extra checks above; None holds every forecast-based stop on an unknown schedule.
        verbose: also announce the reason each time a coming LR drop holds a stop back.
        tensorboard: also write the stop (its alert and the ``curvecast/stopped`` scalar) to TensorBoard; the bundle
            passes its own choice (``Curvecast(tensorboard=False)`` keeps every part out of TensorBoard).

    Attributes:
        stop_request: None, or the :class:`StopRequest` (``reason``, ``step``, ``message``) once the run should stop.
    """

    def __init__(
        self,
        monitor: str | None = None,
        target: float | None = None,
        mode: Literal["min", "max"] | None = None,
        prob_threshold: float = 0.05,
        patience: int = 3,
        min_delta: float = 0.0,
        min_delta_mode: Literal["abs", "rel"] = "abs",
        min_progress: float = 0.1,
        pre_decay_scale: float | None = 4.0,
        check_finite: bool = True,
        stop_on_divergence: bool = True,
        assume_constant_lr: bool = False,
        unknown_lr_extra_patience: int | None = 2,
        verbose: bool = False,
        tensorboard: bool = True,
    ) -> None:
        self.rule = ForecastStopRule(
            target=target,
            mode=mode or "min",
            prob_threshold=prob_threshold,
            patience=patience,
            min_delta=min_delta,
            min_delta_mode=min_delta_mode,
            min_progress=min_progress,
            pre_decay_scale=pre_decay_scale,
            check_finite=check_finite,
            stop_on_divergence=stop_on_divergence,
            assume_constant_lr=assume_constant_lr,
            unknown_lr_extra_patience=unknown_lr_extra_patience,
        )
        self.monitor = monitor
        self._mode_given = mode is not None
        self.verbose = verbose
        self.tensorboard = tensorboard
        self.stop_request: StopRequest | None = None
        self._peak_lr = 0.0
        self._announced_hold = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, target=self.rule.target, mode=self.rule.mode)

    state_name = "early_stopping"

    def bind(self, run: RunContext) -> None:
        """Take the run's monitor and mode unless given (and its history, for the LR so far)."""
        if self.monitor is not None and self.monitor != run.monitor:
            raise ValueError(
                f"ForecastEarlyStopping(monitor={self.monitor!r}) acts on the forecasts of Curvecast's monitor, "
                f"which is {run.monitor!r}: pass `monitor={self.monitor!r}` to Curvecast too"
            )
        super().bind(run)
        self.monitor = run.monitor
        if not self._mode_given:
            self.rule.mode = run.mode

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Used next to a bundle in ``Trainer(callbacks=...)``: attach to it (once)."""
        from curvecast.live.bundle import Curvecast  # the bundle imports this module

        bundle = next((c for c in trainer.callbacks if isinstance(c, Curvecast)), None)
        if bundle is None:
            warn_once(
                "curvecast: ForecastEarlyStopping acts on Curvecast's forecasts, but the Trainer has no Curvecast "
                "callback; add `Curvecast(...)` to `callbacks`, or use `Curvecast(early_stopping=True)`.",
                key="early-stopping-alone",
            )
            return
        bundle.attach(self, save_state=False)  # the Trainer checkpoints this callback itself

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.stop_request = None  # a new fit starts with no decision (the rule's count comes from a checkpoint)

    # -- the actuator ---------------------------------------------------------------------------------------------

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        if self.stop_request is not None:
            return
        lr, peak = self._lr(trainer)
        request = self.rule.update(report, lr=lr, peak_lr=peak)
        if self.rule.held_by_lr_drop and self.verbose and not self._announced_hold:
            self._announced_hold = True
            held = Alert("early_stop_held", report.step, "info", _HELD, source="early_stopping")
            publish_alert(trainer, held, tensorboard=self.tensorboard)
        if request is None:
            return
        self.stop_request = request
        stop = Alert("early_stop", request.step, "warning", request.message, source="early_stopping")
        publish_alert(trainer, stop, tensorboard=self.tensorboard)
        writer = tensorboard_writer(trainer) if self.tensorboard else None
        if writer is not None:
            writer.add_scalar(STOPPED_TAG, 1.0, request.step)
            writer.flush()

    def _lr(self, trainer: Any) -> tuple[float | None, float | None]:
        """The current LR and the peak so far: from the recorded LR series, else the first optimizer."""
        history = self.run.history if self.run is not None else None
        if history is not None and LR in history:
            values = history.series(LR).values
            if len(values):
                return float(values[-1]), float(max(values.max(), self._peak_lr))
        try:
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        except (AttributeError, IndexError, KeyError, TypeError):
            return None, None
        if math.isfinite(lr):
            self._peak_lr = max(self._peak_lr, lr)
        return lr, self._peak_lr

    # -- checkpoint state -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.state_dict(), "peak_lr": self._peak_lr}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rule.load_state_dict(state_dict.get("rule", {}))
        self._peak_lr = float(state_dict.get("peak_lr", 0.0))


_HELD = (
    "Forecast-based early stopping is on hold: the LR schedule is unknown (and no target is set), or still has a drop "
    "ahead that has not got far, and a decay brings the loss down by an amount the curve so far cannot show. Stops on "
    "divergence or non-finite values still apply."
)
