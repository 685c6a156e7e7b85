"""ForecastEarlyStopping: stop a run when its forecast says the target is out of reach, or it diverged.

The decision is :class:`~curvecast.integrations.stop_rule.ForecastStopRule`'s; this actuator feeds it the live
reports through :meth:`~curvecast.integrations.actuator.Actuator.decide`. The :class:`~curvecast.Curvecast` bundle
collects the decision, announces it (Python logging, the TensorBoard text tag ``curvecast/alerts`` and the scalar
``curvecast/early_stopping/stopped``) and has every rank vote with ``trainer.strategy.reduce_boolean_decision``, so all
ranks stop at the same step, mid-epoch too.
"""

from __future__ import annotations

from typing import Any

from curvecast._lightning import Callback
from curvecast.failsafe import warn_once
from curvecast.forecasting.report import Report
from curvecast.forecasting.stop_request import StopReason, StopRequest
from curvecast.integrations.actuator import Actuator, RunContext
from curvecast.integrations.alerts import Alert, publish_alert
from curvecast.integrations.stop_rule import ForecastStopRule
from curvecast.state_checks import checked_mapping

__all__ = ["ForecastEarlyStopping", "StopReason", "StopRequest"]


class ForecastEarlyStopping(Actuator, Callback):
    """Stop training early on the forecast: target out of reach, no improvement left, divergence, non-finite loss.

    Use it through the bundle, ``Curvecast(target=3.2, early_stopping=True)``, or beside it in the Trainer's callbacks
    (the bundle takes it at setup), with a configured rule.

    Args:
        rule: when to stop (:class:`~curvecast.integrations.stop_rule.ForecastStopRule`); None: the defaults, with the
            run's target and mode.
        monitor: the series the bundle forecasts; None takes the bundle's (a different one is an error: the
            forecasts this acts on are of the bundle's ``monitor``).
        verbose: also announce the reason each time a coming LR drop holds a stop back.
        tensorboard: also write that announcement to TensorBoard's ``curvecast/alerts``.

    Attributes:
        stop_request: None, or the :class:`StopRequest` (``reason``, ``step``, ``message``) this actuator decided.

    Example::

        >>> from curvecast import Curvecast
        >>> stopper = ForecastEarlyStopping(ForecastStopRule(prob_threshold=0.1, patience=5))
        >>> callbacks = [Curvecast(target=3.2), stopper]   # Trainer(callbacks=callbacks)
        >>> stopper.rule.patience
        5
    """

    state_name = "early_stopping"

    def __init__(
        self,
        rule: ForecastStopRule | None = None,
        *,
        monitor: str | None = None,
        verbose: bool = False,
        tensorboard: bool = True,
    ) -> None:
        if rule is not None and not isinstance(rule, ForecastStopRule):
            raise TypeError(f"Expected `rule` to be a ForecastStopRule or None, but got {type(rule).__name__}")
        self.rule = rule if rule is not None else ForecastStopRule()
        self.monitor = monitor
        self.verbose = verbose
        self.tensorboard = tensorboard
        self.stop_request: StopRequest | None = None
        self._announced_hold = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, target=self.rule.target, mode=self.rule.mode)

    def bind(self, run: RunContext) -> None:
        """Take the run's monitor unless given (a different one is an error)."""
        if self.monitor is not None and self.monitor != run.monitor:
            raise ValueError(
                f"ForecastEarlyStopping(monitor={self.monitor!r}) acts on the forecasts of Curvecast's monitor, "
                f"which is {run.monitor!r}: pass `monitor={self.monitor!r}` to Curvecast too"
            )
        super().bind(run)
        self.monitor = run.monitor

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.stop_request = None  # a new fit starts with no decision (the rule's count comes from a checkpoint)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.run is None:  # every bundle has taken its actuators at setup: none took this one
            warn_once(
                "curvecast: ForecastEarlyStopping acts on Curvecast's forecasts, but the Trainer has no Curvecast "
                "callback; add `Curvecast(...)` to `callbacks`, or use `Curvecast(early_stopping=True)`.",
                key="early-stopping-alone",
            )

    # -- the actuator ---------------------------------------------------------------------------------------------

    def decide(self, report: Report) -> StopRequest | None:
        if self.stop_request is None:
            self.stop_request = self.rule.update(report)
        return self.stop_request

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        if self.rule.held_by_lr_drop and self.verbose and not self._announced_hold:
            self._announced_hold = True
            held = Alert("early_stop_held", report.step, "info", _HELD, source="early_stopping")
            publish_alert(trainer, held, tensorboard=self.tensorboard)

    # -- checkpoint state -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the rule's count (a damaged state raises ``TypeError`` or ``ValueError`` and changes nothing)."""
        self.rule.load_state_dict(checked_mapping("the ForecastEarlyStopping state", state_dict).get("rule", {}))


_HELD = (
    "Forecast-based early stopping is on hold: the LR schedule is unknown (and no target is set), or still has a drop "
    "ahead that has not got far, and a decay brings the loss down by an amount the curve so far cannot show. Stops on "
    "divergence or non-finite values still apply."
)
