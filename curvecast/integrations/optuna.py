"""ForecastPruningCallback: prune an Optuna trial whose forecast says it will end worse than the study's best trial.

Optuna's pruners compare a trial's intermediate values with other trials' values at the same step, so they say little
while a study holds few trials. This callback asks the trial's own learning curve instead: it forecasts the monitored
metric at the end of the run (``max_steps``) and prunes when, with probability ``confidence``, it will end above the
lowest final value of the completed trials. It still reports every value to the trial, so the study's pruner (if any)
keeps working, and it prunes when that pruner says so as well.

optuna is an optional dependency: ``pip install curvecast[optuna]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curvecast._lightning import Callback
from curvecast.callbacks.schedule_replay import run_horizon
from curvecast.failsafe import warn_once

__all__ = ["FINAL_ATTR", "PRUNED_ATTR", "ForecastPruningCallback"]

PRUNED_ATTR = "curvecast_pruned"  # trial user attribute: why the trial was pruned
FINAL_ATTR = "curvecast_final"  # trial user attribute: {monitor: last value} of a trial that ran to its end


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "ForecastPruningCallback needs optuna, which is not installed: pip install curvecast[optuna]"
        ) from error
    return optuna


class ForecastPruningCallback(Callback):
    """Report ``monitor`` to an Optuna trial after each validation, and prune the trial on its forecast.

    The monitored metric must fall as training goes well (a loss). The trial is pruned at a validation when

    - the study's pruner says so (``trial.should_prune()``), when ``use_pruner`` is True; or
    - at least ``min_points`` values are in, a completed trial of the study ran with this callback and the same
      ``monitor``, and the forecast of ``monitor`` at the horizon is above the lowest final value of those trials with
      probability at least ``confidence``.

    In a single process the callback raises ``optuna.TrialPruned`` from the validation hook, as Optuna's own
    Lightning callback does. Under DDP, rank 0 decides, the decision is broadcast, every rank sets
    ``trainer.should_stop`` so that all stop at the same step, and ``check_pruned()`` must be called after
    ``trainer.fit`` to raise ``TrialPruned``. With a spawning strategy (``ddp_spawn``) the workers hold copies of the
    trial, so the study needs a storage they can all reach (an RDB such as SQLite), as with Optuna's callback.

    Args:
        trial: the ``optuna.trial.Trial`` of the objective function.
        monitor: the logged metric to report and forecast, e.g. ``"val_loss"``.
        confidence: prune when the probability of ending worse than the best trial reaches this.
        min_points: validations before the first forecast.
        horizon: the step forecast to; by default ``trainer.max_steps``, else ``trainer.estimated_stepping_batches``.
        use_pruner: also prune when the study's pruner says so.

    Attributes:
        pruned_reason: None, or why the trial was pruned.

    Example::

        def objective(trial):
            model = Model(lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True))
            pruning = ForecastPruningCallback(trial, monitor="val_loss")
            trainer = Trainer(max_steps=2000, callbacks=[pruning])
            trainer.fit(model, datamodule=data)
            pruning.check_pruned()
            return trainer.callback_metrics["val_loss"].item()
    """

    def __init__(
        self,
        trial: Any,
        monitor: str = "val_loss",
        confidence: float = 0.9,
        min_points: int = 5,
        horizon: int | None = None,
        use_pruner: bool = True,
    ) -> None:
        _optuna()
        if not 0.5 <= confidence < 1.0:
            raise ValueError(f"Expected `confidence` to lie in [0.5, 1), but got {confidence}")
        if min_points < 3:
            raise ValueError(f"Expected `min_points` to be at least 3, but got {min_points}")
        if horizon is not None and horizon <= 0:
            raise ValueError(f"Expected `horizon` to be a positive number of steps or None, but got {horizon}")
        if len(trial.study.directions) > 1:
            raise ValueError(
                f"Expected a single-objective study, but got one with {len(trial.study.directions)} objectives"
            )
        self.trial = trial
        self.monitor = monitor
        self.confidence = confidence
        self.min_points = min_points
        self.horizon = horizon
        self.use_pruner = use_pruner
        self.pruned_reason: str | None = None
        self.steps: list[int] = []
        self.values: list[float] = []
        self._horizon: int | None = horizon

    @property
    def state_key(self) -> str:
        return f"{type(self).__name__}[monitor={self.monitor}]"

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "values": list(self.values)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = [int(step) for step in state_dict.get("steps", [])]
        self.values = [float(value) for value in state_dict.get("values", [])]

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.pruned_reason = None
        self._horizon = self.horizon or run_horizon(trainer)
        if self._horizon is None:
            warn_once(
                "ForecastPruningCallback: the run length is unknown (no max_steps, and the number of steps cannot "
                "be estimated), so trials are pruned only by the study's pruner",
                key="optuna-horizon",
            )

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return  # the sanity check runs a few batches on an untrained model: not a point of the curve
        metric = trainer.callback_metrics.get(self.monitor)
        if metric is None:
            warn_once(
                f"ForecastPruningCallback: Expected `{self.monitor}` among the logged metrics, but got "
                f"{sorted(trainer.callback_metrics) or 'none'}; the trial is not reported or pruned",
                key=f"optuna-monitor-{self.monitor}",
            )
            return
        value, step = float(metric), int(trainer.global_step)
        if self.steps and step <= self.steps[-1]:  # validated twice at one step (or resumed): keep the latest
            while self.steps and step <= self.steps[-1]:
                self.steps.pop(), self.values.pop()
        self.steps.append(step)
        self.values.append(value)
        reason = self._safe_decide(step, value) if trainer.is_global_zero else None
        distributed = int(getattr(trainer, "world_size", 1)) > 1
        if distributed:
            reason = trainer.strategy.broadcast(reason, src=0)
        if reason is None:
            return
        self.pruned_reason = reason
        trainer.should_stop = True
        if trainer.is_global_zero:
            self.trial.set_user_attr(PRUNED_ATTR, reason)  # reaches the study's storage: check_pruned reads it
        if not distributed:
            raise _optuna().TrialPruned(reason)

    def _safe_decide(self, step: int, value: float) -> str | None:
        """The decision, or None when making it failed (a storage error, say): never a crash, never a hang."""
        try:
            return self._decide(step, value)
        except Exception as error:  # noqa: BLE001 - rank 0 must still reach the broadcast the other ranks wait in
            warn_once(f"ForecastPruningCallback: the pruning decision failed and was skipped ({error})")
            return None

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        # The final value of a trial that ran to its end is what later trials are forecast against.
        if trainer.is_global_zero and self.pruned_reason is None and self.values and math.isfinite(self.values[-1]):
            self.trial.set_user_attr(FINAL_ATTR, {self.monitor: self.values[-1]})

    def check_pruned(self) -> None:
        """Raise ``optuna.TrialPruned`` if the trial was pruned; call it after ``trainer.fit`` (required under DDP)."""
        optuna = _optuna()
        reason = self.pruned_reason
        if reason is None:  # a spawned worker pruned it: only the storage knows
            running = self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            mine = next((t for t in running if t.number == self.trial.number), None)
            reason = mine.user_attrs.get(PRUNED_ATTR) if mine is not None else None
        if reason is not None:
            raise optuna.TrialPruned(reason)

    def best_final(self) -> float | None:
        """The lowest final ``monitor`` value among the study's completed trials that ran with this callback."""
        optuna = _optuna()
        complete = self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        finals = [t.user_attrs.get(FINAL_ATTR, {}).get(self.monitor) for t in complete]
        finals = [float(x) for x in finals if isinstance(x, (int, float)) and math.isfinite(x)]
        return min(finals) if finals else None

    def _decide(self, step: int, value: float) -> str | None:
        """Rank 0: report the value, then the reason to prune the trial now, or None."""
        if math.isfinite(value):
            self.trial.report(value, step)  # Optuna refuses NaN and inf: a diverged value is left out
        if self.use_pruner and self.trial.should_prune():
            return f"Trial was pruned at step {step} by the study's pruner ({self.monitor} = {value:.4g})"
        if self._horizon is None or len(self.values) < self.min_points or step >= self._horizon:
            return None
        best = self.best_final()
        if best is None:
            return None
        from curvecast.forecasting import Forecaster

        forecast = Forecaster(min_points=self.min_points).fit(
            np.asarray(self.steps), np.asarray(self.values), horizon=self._horizon
        )
        if not forecast.ok:
            return None
        worse = 1.0 - forecast.prob_below(best)
        if not worse >= self.confidence:
            return None
        lo, hi = forecast.interval(0.8)
        return (
            f"Trial was pruned at step {step}: {self.monitor} is forecast to end at {forecast.final:.4g} "
            f"(80% interval {lo:.4g} .. {hi:.4g}) at step {self._horizon}, above the best trial's {best:.4g} "
            f"with probability {worse:.2f}"
        )
