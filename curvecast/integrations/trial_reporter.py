"""TrialReporter: the ``Curvecast`` bundle's reports sent to an Optuna trial, pruned when the study's pruner says so.

An actuator beside the bundle (``Trainer(callbacks=[Curvecast(monitor="val_loss"), TrialReporter(trial)])``): on
each report it reports the report's observed value to the trial, at its step, and any value of the monitor a skipped
forecast left unreported (one history, the bundle's; no second capture). It keeps what the study's pruner cannot know
as the trial's user attributes: the step the run is planned to end at, its planned LR schedule, and the bundle's
latest forecast (one fit per report, made by the bundle;
:class:`~curvecast.integrations.optuna_pruner.ForecastPruner` reads it instead of fitting again). Then it asks
``trial.should_prune()``; a yes is the run's stop (every rank stops together under DDP), and at the end of the fit
``optuna.TrialPruned`` is raised, as Optuna's own Lightning callback does (under DDP, call :meth:`check_pruned` after
``trainer.fit``).
"""

from __future__ import annotations

import functools
from typing import Any

from curvecast._lightning import Callback
from curvecast.failsafe import warn_once
from curvecast.forecasting.report import Report
from curvecast.forecasting.stop_request import StopReason, StopRequest
from curvecast.integrations.actuator import Actuator, RunContext
from curvecast.integrations.optuna_import import require_optuna
from curvecast.integrations.sweep_judge import (
    FORECAST_ATTR,
    HORIZON_ATTR,
    SCHEDULE_ATTR,
    forecast_record,
    horizon_record,
    schedule_record,
)

__all__ = ["PRUNED_ATTR", "TrialReporter"]

PRUNED_ATTR = "curvecast_pruned"  # trial user attribute: why the trial was pruned
_DIVERGED = (StopReason.NON_FINITE, StopReason.DIVERGENCE)  # stops that end a trial pruned, whoever decided them


_optuna = functools.partial(require_optuna, "TrialReporter")


class TrialReporter(Actuator, Callback):
    """Report the bundle's monitor to an Optuna trial and stop the run when the study's pruner prunes it.

    The trial is judged on each report, and every validation brings one: with a forecast when the bundle's
    ``forecast_budget`` allows one, without otherwise (then ``ForecastPruner`` fits the trial's curve itself, if the
    population leaves it in doubt).

    Args:
        trial: the ``optuna.trial.Trial`` of the objective function.
        monitor: the series reported; None takes the bundle's (a different one is an error: the reports carry the
            bundle's monitor and its forecast).
        prune: ask ``trial.should_prune()`` after each report that brought new values (False: report only).

    Attributes:
        pruned_reason: None, or why the trial was pruned.
        reported: the steps reported to the trial in this fit.

    Example::

        def objective(trial):
            model = Model(lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True))
            bundle = Curvecast(monitor="val_loss")
            trainer = Trainer(max_steps=2000, callbacks=[bundle, TrialReporter(trial)])
            trainer.fit(model, datamodule=data)   # raises optuna.TrialPruned when pruned
            return trainer.callback_metrics["val_loss"].item()

        study = optuna.create_study(pruner=ForecastPruner(), storage="sqlite:///sweep.db")
    """

    def __init__(self, trial: Any, monitor: str | None = None, prune: bool = True) -> None:
        _optuna()
        if len(trial.study.directions) > 1:
            raise ValueError(
                f"Expected a single-objective study, but got one with {len(trial.study.directions)} objectives"
            )
        self.trial = trial
        self.monitor = monitor
        self.prune = prune
        self.pruned_reason: str | None = None
        self.reported: list[int] = []
        self._sent: set[int] = set()
        self._horizon: int | None = None
        self._schedule: Any = None
        self._world_size = 1

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor)

    def bind(self, run: RunContext) -> None:
        """Take the bundle's monitor (a different one is an error) and check its direction against the study's."""
        if self.monitor is not None and self.monitor != run.monitor:
            raise ValueError(
                f"TrialReporter(monitor={self.monitor!r}) reports Curvecast's monitor, which is {run.monitor!r}: "
                f"pass `monitor={self.monitor!r}` to Curvecast too"
            )
        maximize = self.trial.study.direction == _optuna().study.StudyDirection.MAXIMIZE
        if (run.mode == "max") != maximize:
            raise ValueError(
                f"Expected Curvecast's mode for {run.monitor!r} to match the study's direction, but got mode "
                f"{run.mode!r} for a study that {'maximizes' if maximize else 'minimizes'}: pass `mode=` to Curvecast"
            )
        super().bind(run)
        self.monitor = run.monitor

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.pruned_reason = None
        self.reported = []
        self._sent = set()
        self._world_size = int(getattr(trainer, "world_size", 1) or 1)

    def decide(self, report: Report) -> StopRequest | None:
        """Report the report's observed value and the run's plan, then prune when the study's pruner says so."""
        new = self._send_observed(report)
        if report.anomalies and report.monitor == self.monitor:
            # A non-finite value's report carries its anomaly: the value reaches the trial now, and is judged now.
            new = self._send_series(report) or new
        if not new or not self.prune or self.pruned_reason is not None:
            return None
        if not self.trial.should_prune():
            return None
        reason = self._reason(report.step)
        self._pruned(reason)
        # The stop takes effect at the step the run has reached (``stop_step``), where the report says it.
        return StopRequest(StopReason.REQUESTED, int(getattr(report, "stop_step", report.step)), reason)

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        # Points a skipped forecast left unreported, and those after a stop, still reach the trial: none is lost.
        self._send_series(report)
        stop = report.stop
        if stop is not None and stop.reason in _DIVERGED and self.pruned_reason is None:
            # Stopped by another actuator (early stopping) on a NaN or a divergence: the trial ends pruned, not
            # complete with the NaN or inf its objective would return.
            self._pruned(f"Trial was stopped at step {stop.step}: {stop.message}")

    def _pruned(self, reason: str) -> None:
        """The trial ends pruned, for ``reason``, which the storage keeps (``check_pruned`` reads it anywhere)."""
        self.pruned_reason = reason
        try:
            self.trial.set_user_attr(PRUNED_ATTR, reason)
        except Exception as error:  # noqa: BLE001 - the stop stands without its reason in the storage
            warn_once(f"TrialReporter: the reason of the prune was not stored ({error})", key="trial-reporter-reason")

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.pruned_reason is not None and self._world_size == 1:
            raise _optuna().TrialPruned(self.pruned_reason)

    def check_pruned(self) -> None:
        """Raise ``optuna.TrialPruned`` if the trial was pruned; call it after ``trainer.fit`` under DDP."""
        optuna = _optuna()
        reason = self.pruned_reason
        if reason is None:  # another process pruned it: only the storage knows
            running = self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            mine = next((t for t in running if t.number == self.trial.number), None)
            reason = mine.user_attrs.get(PRUNED_ATTR) if mine is not None else None
        if reason is not None:
            raise optuna.TrialPruned(reason)

    # -- what reaches the trial -------------------------------------------------------------------------------------

    def _send_observed(self, report: Report) -> bool:
        """Report the monitor's value the report was made for (a report carrying anomalies is made at their step,
        not at the monitor's); whether it was new."""
        if report.anomalies or report.observed is None or report.monitor != self.monitor:
            return False
        if not self._report(int(report.step), self._value_at_step(report)):
            return False
        self._store_plan(report)
        return True

    def _value_at_step(self, report: Report) -> float:
        """The monitor's value recorded at the report's step, NaN or inf included (``observed`` is the last finite
        one: at a NaN's step it would report a value the run never logged there)."""
        series = report.series.get(self.monitor) if report.series else None
        if series is not None and len(series.steps) and int(round(float(series.steps[-1]))) == int(report.step):
            return float(series.values[-1])
        return float(report.observed)

    def _send_series(self, report: Report) -> bool:
        """Report every value of the monitor recorded and not yet reported (binned history rows are left out: a bin's
        step is the mean of several); whether any was new."""
        series = report.series.get(self.monitor) if report.series else None
        if series is None:
            return False
        counts = getattr(series, "counts", None)
        new = False
        for index, (step, value) in enumerate(zip(series.steps, series.values, strict=True)):
            if counts is not None and counts[index] != 1:
                continue
            new = self._report(int(round(float(step))), float(value)) or new
        return new

    def _report(self, step: int, value: float) -> bool:
        """Report ``value`` at ``step`` once, NaN and inf as they are: Optuna's storages keep them (from 3.0 on), and
        a pruner prunes a trial whose latest value is one (``ForecastPruner`` as ``MedianPruner`` does)."""
        if step in self._sent:
            return False
        self._sent.add(step)
        self.trial.report(float(value), step)
        self.reported.append(step)
        return True

    def _store_plan(self, report: Report) -> None:
        """The horizon and schedule when they change, and the forecast of this report: what the pruner reads."""
        if report.horizon is not None and report.horizon != self._horizon:
            self._horizon = report.horizon
            self.trial.set_user_attr(HORIZON_ATTR, horizon_record(report.horizon))
        schedule = report.schedule
        if schedule is not None and schedule is not self._schedule and schedule.horizon == report.horizon:
            self._schedule = schedule
            self.trial.set_user_attr(SCHEDULE_ATTR, schedule_record(schedule))
        if report.forecast is not None:
            record = forecast_record(report.forecast, report.step)
            if record is not None:
                self.trial.set_user_attr(FORECAST_ATTR, record)

    def _reason(self, step: int) -> str:
        pruner = getattr(self.trial.study, "pruner", None)
        verdict = getattr(pruner, "verdicts", {}).get(self.trial.number)
        if verdict is not None and verdict.prune:
            return f"Trial was pruned at step {step}: {verdict.reason}"
        return f"Trial was pruned at step {step} by the study's pruner ({type(pruner).__name__})"
