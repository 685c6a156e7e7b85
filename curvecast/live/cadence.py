"""ForecastCadence: when the live run forecasts, what a forecast reads, and the Report it hands to the actuators."""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from curvecast.failsafe import warn_once
from curvecast.forecasting import Forecaster, Report
from curvecast.forecasting.references import Reference
from curvecast.forecasting.report import target_chance
from curvecast.forecasting.schedule import LRSchedule
from curvecast.history import RunHistory
from curvecast.live.runner import ForecastRunner
from curvecast.metric_direction import metric_direction
from curvecast.series import LR, TRAIN_LOSS

__all__ = ["DEFAULT_BUDGET", "END_WAIT_S", "FIRST_FIT_S", "ForecastCadence"]

# The longest the end of training waits for the forecasts still to come (the one in flight, then one of the last
# observed step): past it they are abandoned, never re-run inline (a refit is tens of milliseconds; a fit this late is
# starved or stuck, and one that never returns must not keep `trainer.fit` from returning).
END_WAIT_S = 5.0
# Forecasting may take a twentieth of the run's time, in the forecast process: with a schedule-aware fit at 0.1-0.4 s
# of CPU, a forecast every 2-8 s, often enough for early stopping's consecutive checks (at 2% a short run got too few
# of them). At a tenth, the forecasts alone made a 2 ms CPU step's run 10% dearer in CPU (1.18x against 1.08x without
# forecasts, `benchmarks/small_step_overhead.py`); a step of 100 ms or more never meets the budget.
DEFAULT_BUDGET = 0.05
# Before a fit of this run has been timed, the first is assumed to cost this much CPU: the first forecast, too, waits
# until the run has trained FIRST_FIT_S / budget seconds (2 s at the default), so a short run of fast steps never
# spends more than its budget forecasting. A schedule-aware fit of a few hundred points costs 0.05-0.4 s.
FIRST_FIT_S = 0.1


class ForecastCadence:
    """Forecast ``monitor`` every ``forecast_every`` steps (the training loss, or a metric logged while training) or
    after each validation that gave it a new point, in a worker thread when ``background``, so the training step never
    waits for a fit.

    The training thread snapshots what a fit needs (immutable views of the history, the shared read-only LR
    schedule) and the worker reads only that snapshot.

    Args:
        history: the run's history.
        schedule: returns the LR of every step ``0..horizon`` (None while unknown).
        horizon: returns the step forecast to (``max_steps``), None while the run length is unknown.
        monitor: the series to forecast.
        target: the value of ``monitor`` the run should reach, or None.
        forecast_every: optimizer steps between forecasts of the training loss.
        background: forecast in a worker thread.
        budget: the largest share of the run's time spent forecasting: after a fit that took ``c`` seconds of CPU, the
            next one waits until ``c / budget`` seconds have passed (beyond ``forecast_every``). A fit costs tens to
            hundreds of milliseconds, so fast steps would otherwise pay for it many times over; None: no limit.
        mode, bounds: the monitor's direction and range (see ``Forecaster.fit``); bounds None reads them from the
            monitor's name and values at each forecast (``metric_direction``).
    """

    clock: Callable[[], float] = staticmethod(time.perf_counter)  # the run's wall clock (replaceable in tests)

    def __init__(
        self,
        history: RunHistory,
        schedule: Callable[[], LRSchedule | None],
        horizon: Callable[[], int | None],
        monitor: str,
        target: float | None,
        forecast_every: int,
        background: bool,
        budget: float | None = DEFAULT_BUDGET,
        mode: str = "min",
        bounds: tuple[float | None, float | None] | None = None,
    ) -> None:
        real = isinstance(budget, numbers.Real) and not isinstance(budget, bool)  # "0.1" is no share of a run's time
        if budget is not None and (not real or not 0.0 < budget <= 1.0):
            raise ValueError(f"Expected `forecast_budget` to lie in (0, 1] or be None, but got {budget!r}")
        self.history = history
        self.schedule = schedule
        self.horizon = horizon
        self.monitor = monitor
        self.target = target
        self.forecast_every = forecast_every
        self.budget = budget
        self.mode = mode
        self.bounds = bounds
        self.references: tuple[Reference, ...] = ()  # finished runs of the recipe, set at the start of each fit
        self.end_wait = END_WAIT_S  # seconds the end of training waits for forecasts in the worker
        self.min_points = Forecaster().min_points  # fewest points of the monitor a forecast is made from
        self._submitted_at: float | None = None  # clock() when the last forecast started
        self._started_at: float | None = None  # clock() when training started (see `start`)
        self._runner: ForecastRunner[Report] = ForecastRunner(background)
        self._last_step: int | None = None  # the last observed step a forecast was started from
        self._bare_step: int | None = None  # the last validation step reported without a forecast

    def start(self, forecasts: bool = True) -> None:
        """Training starts (or resumes): the first forecast's budget counts from now, and, where this process
        ``forecasts`` (rank 0), the forecast process starts in the background."""
        self._started_at = self.clock()
        if forecasts:
            self._runner.prepare()

    def submit_if_due(self, at_validation: bool) -> bool:
        """Start a forecast if one is due; return whether one started."""
        if self._runner.busy:
            return False  # the point stays unforecast (`_due` not asked): the next check, or the end of training
        if self._due(at_validation) and self._runner.submit(self._job()):
            self._submitted_at = self.clock()
            return True
        return False

    def unforecast_validation(self) -> Report | None:
        """A report without a forecast of the monitor's newest validation point, when none was started for it (the
        worker busy, or the budget spent): the actuators still hear of every validation (an Optuna trial is judged
        on each), once per point."""
        if self.monitor == TRAIN_LOSS:
            return None
        last = self.history.last(self.monitor)
        if last is None or last[0] in (self._last_step, self._bare_step):
            return None
        self._bare_step = last[0]
        return self.report(int(last[0]))

    @property
    def ready(self) -> bool:
        """A finished forecast's report waits for :meth:`poll`."""
        return self._runner.ready

    def poll(self) -> Report | None:
        """The report of the last finished forecast, once; None while one runs or when there is nothing new."""
        return self._runner.poll()

    @property
    def abandoned(self) -> int:
        """Forecasts still running when training ended, given up on rather than waited for."""
        return self._runner.abandoned

    def finish(self) -> list[Report]:
        """At the end of training: the forecast in flight, then one of the last observed point if that is newer.

        In the background both run in the worker and together wait at most ``end_wait`` seconds (the one in flight at
        most half of it when a newer point waits); a forecast still running then is abandoned, with a warning, and the
        last observed point is reported without one.
        """
        deadline = time.monotonic() + self.end_wait
        abandoned = self._runner.abandoned
        last = self.history.last(self.monitor)
        newer = last is not None and last[0] != self._last_step
        done = self._runner.drain(self.end_wait / 2 if newer else self.end_wait)  # half is left for the newer one
        reports = [done] if done is not None else []
        if newer:
            self._last_step = last[0]
            self._runner.submit(self._job())  # the worker is free: drained
            final = self._runner.drain(max(deadline - time.monotonic(), 0.0))
            if final is not None:
                reports.append(final)
        if self._runner.abandoned > abandoned:
            warn_once(
                f"curvecast: a forecast still running {self.end_wait:g} s after the end of training was abandoned "
                "(the machine is busy, or a fit is stuck); the last forecast is the one before it.",
                key="forecast-abandoned",
            )
            # The last observed point is still reported, without a forecast: the actuators write and judge what was
            # recorded since the last report (TensorBoard's curve would otherwise end at the last forecast).
            if last is not None and (not reports or reports[-1].step < last[0]):
                reports.append(self.report(int(last[0])))
        return reports

    def close(self) -> None:
        self._runner.close()

    def report(self, step: int, anomalies: tuple = ()) -> Report:
        """A report at ``step`` without a forecast (anomalies travel in these between forecasts)."""
        schedule = self.schedule()
        return Report(
            step=step,
            monitor=self.monitor,
            horizon=self.horizon(),
            anomalies=anomalies,
            target=self.target,
            lr_schedule_known=schedule is not None,
            lr_drop_ahead=schedule is not None and schedule.drop_ahead(step),
            mode=self.mode,
            schedule=schedule,
            **self._observed(),
            **self._lr(),
        )

    def _lr(self) -> dict[str, float | None]:
        """The LR recorded last and the highest recorded so far (O(points kept))."""
        if LR not in self.history:
            return {}
        values = self.history.series(LR).values
        finite = values[np.isfinite(values)]
        if not len(finite):
            return {}
        last = float(values[-1])
        return {"lr": last if np.isfinite(last) else None, "peak_lr": float(finite.max())}

    def _observed(self) -> dict[str, float | int | None]:
        """The last and best observed values, and the first step that reached the target (O(points kept))."""
        if self.monitor not in self.history:
            return {}
        series = self.history.series(self.monitor)
        finite = np.isfinite(series.values)
        steps, values = series.steps[finite], series.values[finite]
        if not len(values):
            return {}
        sign = 1.0 if self.mode == "min" else -1.0
        reached = None
        if self.target is not None:
            hits = np.flatnonzero(sign * values <= sign * self.target)
            reached = int(round(steps[hits[0]])) if hits.size else None
        best = float(values.min() if self.mode == "min" else values.max())
        return {"observed": float(values[-1]), "best": best, "reached_at": reached}

    def _due(self, at_validation: bool) -> bool:
        last = self.history.last(self.monitor)
        if last is None or last[0] == self._last_step:
            return False
        if at_validation:
            due = self.monitor != TRAIN_LOSS  # a validation metric has a new point: forecast it now
        else:  # the training loss, or a metric the module logs while training, on the step cadence
            # Once per multiple of `forecast_every` passed: points reach the host in batches (every few steps), and a
            # forecast made at the first point past each multiple keeps the cadence's average.
            due = last[0] // self.forecast_every > (self._last_step or 0) // self.forecast_every
        if due and self._over_budget():
            return False  # the last observed step stays unforecast: the next check tries again
        if due:
            self._last_step = last[0]
        return due

    def _over_budget(self) -> bool:
        if self.budget is None:
            return False
        cost, since = self._runner.last_cost, self._submitted_at
        if cost is None or since is None:  # no fit timed yet: the first is budgeted from the start of training
            cost, since = FIRST_FIT_S, self._started_at
        return since is not None and self.clock() - since < cost / self.budget

    def _job(self) -> Callable[[], Report]:
        series = self.history.series(self.monitor)  # immutable arrays: safe to read from another thread
        horizon = self.horizon()
        schedule = self.schedule()  # shared and read-only: passed as it is, dense or in knots, never copied
        blank = self.report(int(series.steps[-1]))
        references = self.references  # a tuple: the worker keeps the one of this moment
        bounds = self.bounds or metric_direction(self.monitor, series.values, self.mode)[1]

        def job() -> Report:
            if horizon is None or horizon < blank.step:
                return blank
            forecast = self._runner.compute(
                Forecaster().fit, series.steps, series.values, horizon=horizon, lrs=schedule, counts=series.counts,
                mode=self.mode, bounds=bounds, references=references,
            )  # fmt: skip
            if forecast is None:  # abandoned at the end of training
                return blank
            return replace(blank, forecast=forecast, target_chance=target_chance(forecast, blank.target))

        return job
