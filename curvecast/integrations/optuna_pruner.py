"""ForecastPruner: an Optuna pruner that judges a trial against the whole study and its own forecast.

Optuna's pruners read a study's trials from its storage, so they work for any number of worker processes and
machines on one RDB storage; this one does too. At each ``trial.should_prune()`` it reads every trial of the study
(``study.get_trials(deepcopy=False)``: running, pruned and completed), and asks the population rule
(:class:`~curvecast.forecasting.population.PopulationRule`) whether the trial can still end better than the best
completed trial: from where the completed trials stood at the same step and where they ended, and from the trial's
own forecast (the one its ``Curvecast`` bundle stored, or a fit of its reported values with its planned LR schedule).

A damaged record of another trial (a NaN or infinite value, a stored horizon of ``inf``, a user attribute that is not
what curvecast wrote) is skipped, that part of that trial alone, with one warning; pruning goes on for the others.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from curvecast.failsafe import warn_once
from curvecast.forecasting.population import PopulationRule, TrialPath, Verdict
from curvecast.integrations.optuna_import import require_optuna
from curvecast.integrations.sweep_judge import (
    FORECAST_ATTR,
    HORIZON_ATTR,
    SCHEDULE_ATTR,
    SweepJudge,
    read_forecast,
    read_horizon,
    read_schedule,
)

__all__ = ["ForecastPruner"]


_optuna = functools.partial(require_optuna, "ForecastPruner")


@dataclass(frozen=True)
class _Record:
    """One trial of the study as the rule reads it (its damaged parts left out)."""

    path: TrialPath | None
    horizon: int | None


def _base() -> type:
    try:
        return _optuna().pruners.BasePruner
    except ModuleNotFoundError:
        return object  # the class still imports; making one says what to install


class ForecastPruner(_base()):  # type: ignore[misc]
    """Prune a trial that the study's other trials and its own forecast say cannot end better than the best.

    Before ``min_finished`` trials have completed with a value at the trial's step, a trial is pruned only when it is
    behind most trials at that step and its own forecast gives it at most ``1 - confidence`` to end better than the
    best value any trial has reached; from then on, when the completed trials' finals, regressed on where they stood at
    that step, give it at most ``1 - confidence`` to end better than the best of them, and its own forecast (when it
    has one) agrees. A trial whose latest value is NaN or infinite is pruned.

    Args:
        confidence: prune when the chance of ending better than the best is at most ``1 - confidence``.
        min_finished: completed trials with a value at the step before their finals are used.
        min_peers: other trials with a value at the step before a trial is judged at all.
        window: reports averaged into a trial's level at a step (one noisy validation neither prunes nor saves it).
        horizon: the step trials end at, when they do not say it themselves (``Curvecast`` with a
            :class:`~curvecast.integrations.optuna.TrialReporter` stores it); None: the last step of the longest
            completed trial.
        n_warmup_steps: no trial is pruned before this step.
        forecast: fit a trial's own curve when it has no forecast stored (the forecaster costs tens to hundreds of
            milliseconds, only when the population alone would prune).

    Attributes:
        verdicts: the latest :class:`~curvecast.forecasting.population.Verdict` of each trial judged in this
            process, by trial number (its ``reason`` says why it was pruned or kept).
        fits: forecasts fitted by this pruner so far.

    Example::

        >>> import optuna
        >>> study = optuna.create_study(pruner=ForecastPruner(horizon=1000))
        >>> isinstance(study.pruner, optuna.pruners.BasePruner)
        True
    """

    def __init__(
        self,
        confidence: float = 0.9,
        min_finished: int = 3,
        min_peers: int = 1,
        window: int = 3,
        horizon: int | None = None,
        n_warmup_steps: int = 0,
        forecast: bool = True,
    ) -> None:
        _optuna()
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0):
            raise ValueError(f"Expected `horizon` to be a positive number of steps or None, but got {horizon!r}")
        if n_warmup_steps < 0:
            raise ValueError(f"Expected `n_warmup_steps` to be at least 0, but got {n_warmup_steps}")
        PopulationRule(confidence=confidence, min_finished=min_finished, min_peers=min_peers, window=window)
        self.confidence = confidence
        self.min_finished = min_finished
        self.min_peers = min_peers
        self.window = window
        self.horizon = horizon
        self.n_warmup_steps = n_warmup_steps
        self.forecast = forecast
        self.verdicts: dict[int, Verdict] = {}
        self.fits = 0
        self._records: dict[int, tuple[Any, _Record]] = {}  # by trial id: (what it was read from, the record)
        self._study: tuple[int, int] | None = None  # the study the records are of (its storage and id)

    def prune(self, study: Any, trial: Any) -> bool:
        """Whether to prune ``trial`` now; a failure to decide is a warning and no prune, never an error."""
        try:
            return self._prune(study, trial)
        except Exception as error:  # noqa: BLE001 - a pruner's failure must not end the user's objective
            warn_once(f"ForecastPruner: the pruning decision failed and was skipped ({type(error).__name__}: {error})",
                      key="forecast-pruner-failed")  # fmt: skip
            return False

    def _prune(self, study: Any, trial: Any) -> bool:
        optuna = _optuna()
        if len(study.directions) > 1:
            raise ValueError(f"Expected a single-objective study, but got one with {len(study.directions)} objectives")
        # Trial ids restart in each in-memory storage: records of another study's trials (one pruner reused for
        # several studies, as Optuna's own allow) are no records of this one's.
        study_key = (id(getattr(study, "_storage", study)), int(getattr(study, "_study_id", 0)))
        if study_key != self._study:
            self._study, self._records = study_key, {}
            self.verdicts = {}
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        mode = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        states = optuna.trial.TrialState
        peers, longest = [], 0
        for other in study.get_trials(deepcopy=False):
            if other.number == trial.number or other.state not in (
                states.RUNNING, states.PRUNED, states.COMPLETE, states.FAIL
            ):  # fmt: skip
                continue
            record = self._record(other, other.state == states.COMPLETE)
            if record.path is not None:
                peers.append(record.path)
                if record.path.final is not None:
                    longest = max(longest, int(record.path.steps[-1]))
        steps = sorted(trial.intermediate_values)
        values = [float(trial.intermediate_values[s]) for s in steps]
        horizon = self._attr(trial, HORIZON_ATTR, read_horizon) or self.horizon or (longest or None)
        schedule = self._attr(trial, SCHEDULE_ATTR, lambda r: read_schedule(r, horizon)) if horizon else None
        stored = self._attr(trial, FORECAST_ATTR, read_forecast)
        rule = PopulationRule(mode, self.confidence, self.min_finished, self.min_peers, self.window)
        judge = SweepJudge(rule)
        verdict, fits = judge.judge(steps, values, peers, horizon, schedule, stored, fit=self.forecast)
        self.fits += fits
        self.verdicts[trial.number] = verdict
        return verdict.prune

    def _record(self, trial: Any, complete: bool) -> _Record:
        """A trial as the rule reads it, read again only when it has changed (new values, a new state)."""
        key = (trial.state, len(trial.intermediate_values), trial.last_step)
        cached = self._records.get(trial._trial_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        steps = sorted(trial.intermediate_values)
        values = np.array([trial.intermediate_values[s] for s in steps], dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            at = steps[int(np.argmax(bad))]
            warn_once(f"ForecastPruner: trial {trial.number} has a non-finite value at step {at}; its finite values "
                      "are read, the others skipped",
                      key=f"forecast-pruner-nonfinite-{trial._trial_id}")  # fmt: skip
        final = float(values[-1]) if complete and len(values) else None
        horizon = self._attr(trial, HORIZON_ATTR, read_horizon)
        schedule = self._attr(trial, SCHEDULE_ATTR, lambda r: read_schedule(r, horizon)) if horizon else None
        record = _Record(TrialPath.of(steps, values, final, schedule), horizon)
        self._records[trial._trial_id] = (key, record)
        return record

    @staticmethod
    def _attr(trial: Any, name: str, read: Any) -> Any:
        """A user attribute of ``trial`` read back by ``read``, or None (with one warning) when it is damaged."""
        try:
            return read(trial.user_attrs.get(name))
        except (ValueError, TypeError, OverflowError) as error:
            warn_once(f"ForecastPruner: trial {trial.number}'s user attribute {name!r} is damaged and was skipped "
                      f"({error})", key=f"forecast-pruner-attr-{trial._trial_id}-{name}")  # fmt: skip
            return None
