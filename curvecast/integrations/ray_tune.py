"""ForecastScheduler: a Ray Tune trial scheduler that stops a trial as curvecast's Optuna pruner prunes one.

The decision is :class:`~curvecast.integrations.sweep_judge.SweepJudge`'s, the same code as
:class:`~curvecast.integrations.optuna_pruner.ForecastPruner`: a trial is judged at each result against the other
trials' values at the same step and where the finished ones went from there, together with its own forecast. Ray Tune
hands every result of every trial to the scheduler in the driver, so the population is kept here, in memory.

The trial reports as Ray Tune users already do (``tune.report({"val_loss": ..., "step": ...})``, or Ray's Lightning
``TuneReportCheckpointCallback``); a result may carry a ``"curvecast"`` entry with the run's ``"horizon"`` (its
``max_steps``) and planned LR ``"schedule"`` (as :func:`~curvecast.integrations.sweep_judge.schedule_record` writes
it), which lets the trial's own forecast see a decay still to come.

Ray Tune is an optional dependency: ``pip install curvecast[ray]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from curvecast.failsafe import warn_once
from curvecast.forecasting.population import PopulationRule, TrialPath, Verdict
from curvecast.integrations.sweep_judge import SweepJudge, read_horizon, read_schedule

__all__ = ["ForecastScheduler"]


def _fifo() -> type:
    try:
        from ray.tune.schedulers import FIFOScheduler
    except ModuleNotFoundError:
        return object  # the class still imports; making one says what to install
    return FIFOScheduler


@dataclass
class _Curve:
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    final: float | None = None
    horizon: int | None = None
    schedule: Any = None
    plan_read: bool = False  # the result's "curvecast" entry is read once

    def path(self) -> TrialPath | None:
        return TrialPath.of(self.steps, self.values, self.final, self.schedule)


class ForecastScheduler(_fifo()):  # type: ignore[misc]
    """Stop a Ray Tune trial that the other trials and its own forecast say cannot end better than the best.

    Args:
        metric: the reported metric judged; None takes ``tune.TuneConfig(metric=...)``.
        mode: ``"min"`` or ``"max"``; None takes ``tune.TuneConfig(mode=...)``.
        time_attr: the result's entry that counts steps (``"training_iteration"``, or ``"step"`` when the trainable
            reports the optimizer step).
        confidence, min_finished, min_peers, window: as for
            :class:`~curvecast.integrations.optuna_pruner.ForecastPruner`.
        horizon: the value of ``time_attr`` a trial ends at, when its results do not say it.
        forecast: fit a trial's own curve when the population alone would stop it.

    Attributes:
        verdicts: the latest verdict of each trial, by trial id.

    Example::

        >>> scheduler = ForecastScheduler(metric="val_loss", mode="min", time_attr="step")
        >>> scheduler.metric
        'val_loss'
    """

    def __init__(
        self,
        metric: str | None = None,
        mode: str | None = None,
        time_attr: str = "training_iteration",
        confidence: float = 0.9,
        min_finished: int = 3,
        min_peers: int = 1,
        window: int = 3,
        horizon: int | None = None,
        forecast: bool = True,
    ) -> None:
        if _fifo() is object:
            raise ModuleNotFoundError("ForecastScheduler needs Ray Tune, which is not installed: "
                                      "pip install curvecast[ray]")  # fmt: skip
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"Expected `mode` to be one of 'min', 'max' or None, but got {mode!r}")
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0):
            raise ValueError(f"Expected `horizon` to be a positive number of steps or None, but got {horizon!r}")
        PopulationRule(confidence=confidence, min_finished=min_finished, min_peers=min_peers, window=window)
        super().__init__()
        self._metric = metric
        self._mode = mode
        self.time_attr = time_attr
        self.confidence = confidence
        self.min_finished = min_finished
        self.min_peers = min_peers
        self.window = window
        self.horizon = horizon
        self.forecast = forecast
        self.verdicts: dict[str, Verdict] = {}
        self._curves: dict[str, _Curve] = {}
        self._stopped: set[str] = set()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._curves.setdefault(trial.trial_id, _Curve())

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        try:
            return self.STOP if self._judge(trial, result) else self.CONTINUE
        except Exception as error:  # noqa: BLE001 - a scheduler's failure must not end the experiment
            warn_once(f"ForecastScheduler: the decision failed and was skipped ({type(error).__name__}: {error})",
                      key="forecast-scheduler-failed")  # fmt: skip
            return self.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        curve = self._curves.setdefault(trial.trial_id, _Curve())
        if trial.trial_id in self._stopped:
            return  # stopped here: not a finished trial
        if result:
            self._record(curve, result)
        # A trial that ended on a NaN diverged: it is no finished trial whose final the others are judged against.
        curve.final = curve.values[-1] if curve.values and math.isfinite(curve.values[-1]) else None

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._stopped.add(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._stopped.add(trial.trial_id)

    def debug_string(self) -> str:
        stopped = sum(v.prune for v in self.verdicts.values())
        return f"ForecastScheduler: {stopped} of {len(self._curves)} trials stopped"

    # -- the decision -----------------------------------------------------------------------------------------------

    def _record(self, curve: _Curve, result: dict[str, Any]) -> bool:
        """Add the result's point to ``curve``; whether it had one."""
        if self._metric not in result or self.time_attr not in result:
            return False
        step, value = float(result[self.time_attr]), float(result[self._metric])
        if curve.steps and step <= curve.steps[-1]:
            return False
        curve.steps.append(step)
        curve.values.append(value)
        plan = result.get("curvecast")
        if isinstance(plan, dict) and not curve.plan_read:
            curve.plan_read = True
            try:
                curve.horizon = read_horizon(plan.get("horizon")) or curve.horizon
                curve.schedule = read_schedule(plan.get("schedule"), curve.horizon) or curve.schedule
            except (ValueError, TypeError, OverflowError) as error:
                warn_once(f"ForecastScheduler: a trial's 'curvecast' entry is damaged and was skipped ({error})",
                          key="forecast-scheduler-plan")  # fmt: skip
        return True

    def _judge(self, trial: Any, result: dict[str, Any]) -> bool:
        if self._metric is None or self._mode is None:
            raise ValueError("Expected `metric` and `mode` to be set, on the scheduler or in tune.TuneConfig")
        curve = self._curves.setdefault(trial.trial_id, _Curve())
        if not self._record(curve, result):
            return False
        peers, longest = [], 0
        for trial_id, other in self._curves.items():
            if trial_id == trial.trial_id:
                continue
            path = other.path()
            if path is not None:
                peers.append(path)
                if path.final is not None:
                    longest = max(longest, int(path.steps[-1]))
        horizon = curve.horizon or self.horizon or (longest or None)
        rule = PopulationRule(self._mode, self.confidence, self.min_finished, self.min_peers, self.window)
        verdict, _ = SweepJudge(rule).judge(curve.steps, curve.values, peers, horizon, curve.schedule,
                                            fit=self.forecast)  # fmt: skip
        self.verdicts[trial.trial_id] = verdict
        if verdict.prune:
            self._stopped.add(trial.trial_id)
        return verdict.prune
