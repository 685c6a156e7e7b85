"""Optuna: a pruner over the whole study, the bundle's reports sent to a trial, and the older one-trial callback.

- :class:`ForecastPruner` (an ``optuna.pruners.BasePruner``) judges a trial against every trial of the study, read
  from its storage (so any number of worker processes share one RDB storage), and against its own forecast.
- :class:`TrialReporter` (an actuator beside the ``Curvecast`` bundle) reports the bundle's monitor to the trial with
  the run's horizon, planned LR schedule and forecast, and stops the run when the study's pruner prunes the trial.
- :class:`ForecastPruningCallback` (deprecated: use the two above) judges one trial alone, as described below.

ForecastPruningCallback: prune an Optuna trial whose forecast says it will end worse than the study's best trial.

Optuna's pruners compare a trial's intermediate values with other trials' values at the same step, so they say little
while a study holds few trials, and nothing of where a curve is heading. This callback asks where the trial is going:
it forecasts the monitored metric at the end of the run (``max_steps``) from the trial's own curve, the run's planned
LR schedule (a cosine decay still to come brings a drop the curve so far cannot show) and the curves of the completed
trials, and prunes when, with probability ``confidence``, the trial will end worse than the best completed trial. It
still reports every value to the trial, so the study's pruner (if any) keeps working, and it prunes when that pruner
says so as well.

optuna is an optional dependency: ``pip install curvecast[optuna]``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np

from curvecast._lightning import Callback
from curvecast.callbacks.lr_capture import LearningRateCapture
from curvecast.callbacks.measures.schedule_replay import run_horizon
from curvecast.failsafe import warn_once
from curvecast.forecasting import Forecaster
from curvecast.forecasting.report import target_chance
from curvecast.integrations.optuna_import import require_optuna
from curvecast.integrations.optuna_pruner import ForecastPruner
from curvecast.integrations.trial_curves import CURVE_ATTR, TrialCurve, chance_to_beat
from curvecast.integrations.trial_reporter import PRUNED_ATTR, TrialReporter

__all__ = ["CURVE_ATTR", "FINAL_ATTR", "PRUNED_ATTR", "ForecastPruner", "ForecastPruningCallback", "TrialReporter"]

FINAL_ATTR = "curvecast_final"  # trial user attribute: {monitor: last value} of a trial that ran to its end


_optuna = functools.partial(require_optuna, "ForecastPruningCallback")


class ForecastPruningCallback(Callback):
    """Report ``monitor`` to an Optuna trial after each validation, and prune the trial on its forecast.

    Deprecated: it judges each trial alone, against completed trials only, and keeps its own copy of the run's
    curve. Use ``Curvecast(monitor=...)`` with a :class:`TrialReporter` and a study whose pruner is a
    :class:`ForecastPruner`, which judges a trial against every trial of the study from the first ones on.

    The direction comes from the study: ``"minimize"`` for a loss, ``"maximize"`` for an accuracy or a reward. Once a
    trial of the study has run to its end with this callback and the same ``monitor``, a later trial is pruned at a
    validation, from ``min_points`` values on, when its chance of ending better than the best of those trials falls
    below ``1 - confidence``. The chance is read from the forecast of the trial's own curve at the horizon, with the
    completed trials' curves (kept in their user attribute ``CURVE_ATTR``) as references where the forecaster takes
    them. When the run's LR schedule is known (replayed from its schedulers at the start), the trial is forecast both
    with it and without it, and the higher chance counts: a decay still to come can bring a drop the curve so far does
    not show, and a trial is pruned only when both forecasts give up on it. Once two completed trials' curves are in,
    their record must give up on it too: how much each improved from the same fraction of its run to its end, read as
    a Student-t predictive distribution of this trial's improvement (heavy-tailed while few trials are in). Curves
    of different settings cross (a high LR often trails until its decay), and one trial's forecast cannot see that.

    The trial is also pruned when the study's pruner says so (``trial.should_prune()``), when ``use_pruner`` is True.

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
        references: read the completed trials' curves (as the forecaster's references, and for their record).

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
        min_points: int = 4,
        horizon: int | None = None,
        use_pruner: bool = True,
        references: bool = True,
    ) -> None:
        optuna = _optuna()
        warnings.warn(
            "ForecastPruningCallback is deprecated: use Curvecast(monitor=...) with TrialReporter(trial), in a study "
            "whose pruner is ForecastPruner()",
            DeprecationWarning,
            stacklevel=2,
        )
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
        self.references = references
        self.mode = "max" if trial.study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        self.pruned_reason: str | None = None
        self.steps: list[int] = []
        self.values: list[float] = []
        self._horizon: int | None = horizon
        # The planned LR of every step, replayed from the schedulers at the start (a decay still to come included).
        self._lr = LearningRateCapture()

    @property
    def state_key(self) -> str:
        return f"{type(self).__name__}[monitor={self.monitor}]"

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "values": list(self.values), "lr": self._lr.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = [int(step) for step in state_dict.get("steps", [])]
        self.values = [float(value) for value in state_dict.get("values", [])]
        if "lr" in state_dict:
            self._lr.load_state_dict(state_dict["lr"])

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.pruned_reason = None
        self._horizon = self.horizon or run_horizon(trainer)
        if self._horizon is None:
            warn_once(
                "ForecastPruningCallback: the run length is unknown (no max_steps, and the number of steps cannot "
                "be estimated), so trials are pruned only by the study's pruner",
                key="optuna-horizon",
            )

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._lr.on_train_start(trainer, pl_module)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self._lr.on_before_optimizer_step(trainer, pl_module, optimizer)

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
        # The final value and the curve of a trial that ran to its end are what later trials are forecast against.
        if not trainer.is_global_zero or self.pruned_reason is not None or not self.values:
            return
        if math.isfinite(self.values[-1]):
            self.trial.set_user_attr(FINAL_ATTR, {self.monitor: self.values[-1]})
        # A reference's last point is read as its run's end: a curve another callback cut short would misplace it.
        if self._horizon is not None and len(self.values) >= 2 and self.steps[-1] >= 0.9 * self._horizon:
            try:
                schedule = self._schedule()
                lr_of_step = schedule.lr if schedule is not None else None
                curve = TrialCurve.record(self.steps, self.values, self._horizon, lr_of_step)
                self.trial.set_user_attr(CURVE_ATTR, curve.to_attr(self.monitor))
            except Exception as error:  # noqa: BLE001 - a storage refusing the curve costs later trials a reference
                warn_once(f"ForecastPruningCallback: the trial's curve was not stored ({error})")

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

    def _completed(self) -> list[Any]:
        optuna = _optuna()
        return self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))

    def best_final(self) -> float | None:
        """The best final ``monitor`` value (lowest, or highest for a maximized study) among the study's completed
        trials that ran with this callback."""
        finals = [t.user_attrs.get(FINAL_ATTR, {}).get(self.monitor) for t in self._completed()]
        finals = [float(x) for x in finals if isinstance(x, (int, float)) and math.isfinite(x)]
        if not finals:
            return None
        return min(finals) if self.mode == "min" else max(finals)

    def completed_curves(self) -> list[TrialCurve]:
        """The curves of ``monitor`` of the study's completed trials that ran with this callback."""
        curves = (TrialCurve.from_attr(t.user_attrs.get(CURVE_ATTR), self.monitor) for t in self._completed())
        return [c for c in curves if c is not None]

    def _schedule(self) -> Any:
        """The planned LR schedule of the run, when known and of the forecast's horizon; else None."""
        schedule = self._lr.schedule()
        return schedule if schedule is not None and schedule.horizon == self._horizon else None

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
        curves = self.completed_curves() if self.references else []
        references = self._references(curves)
        schedule = self._schedule()
        forecasts = [self._forecast(None, references)]
        if schedule is not None:
            forecasts.append(self._forecast(schedule, references))
        if any(f is None for f in forecasts):
            return None
        chances = [target_chance(f, best) for f in forecasts]  # each forecast is of the study's direction
        if any(c is None for c in chances):
            return None
        i = int(np.argmax(chances))  # the more hopeful forecast is the one quoted
        # What the completed trials went on to improve from this point of their runs: a trial that only a curve
        # crossing the others' could save is not pruned on its own forecast, which cannot see such a crossing coming.
        record = chance_to_beat(step, value, self._horizon, curves, best, self.mode) if math.isfinite(value) else None
        chance = max(chances[i], record if record is not None else 0.0)
        if chance > 1.0 - self.confidence:
            return None
        forecast = forecasts[i]
        lo, hi = forecast.interval(0.8)
        if len(forecasts) == 1:
            which = "the LR schedule is unknown"
        else:
            which = f"the more hopeful of the forecasts with and without the LR schedule: {('without', 'with')[i]} it"
        worse = "above" if self.mode == "min" else "below"
        said = "" if record is None else f"; the {len(curves)} completed trials' curves give it {record:.1%}"
        return (
            f"Trial was pruned at step {step}: {self.monitor} is forecast to end at {forecast.final:.4g} (80% interval "
            f"{lo:.4g} .. {hi:.4g}) at step {self._horizon}, {worse} the best trial's {best:.4g} with probability "
            f"{1.0 - chances[i]:.2f} ({which}){said}"
        )

    @staticmethod
    def _references(curves: list[TrialCurve]) -> list[Any]:
        """The completed trials' curves as forecasting references."""
        return [r for r in (c.reference() for c in curves) if r is not None]

    def _forecast(self, schedule: Any, references: list[Any]) -> Any:
        """The forecast of the trial's curve at the horizon (with the LR ``schedule`` if given), or None."""
        # Within the floor the data supports, as the pruner's own forecast (``sweep_judge.OwnForecast``).
        forecast = Forecaster(min_points=self.min_points, open_ceiling=False).fit(
            np.asarray(self.steps),
            np.asarray(self.values),
            horizon=self._horizon,
            lrs=schedule,
            mode=self.mode,
            references=references or None,
        )
        return forecast if forecast.ok else None
