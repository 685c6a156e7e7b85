"""RunBrain: what a live run's recorded points become. The detectors score them, the cadence forecasts the monitor,
and both become Reports for the actuators; every rank then votes on the stop an actuator asked for.

Data flows one way: the sensors record into the run's history, the brain listens to it and hands Reports to the
actuators (:class:`~curvecast.live.report_dispatch.ReportDispatch`), and the Report is all an actuator sees.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from curvecast._lightning import is_global_zero, optimizer_step_index, stopped_by
from curvecast.callbacks.loss_capture import LossCapture
from curvecast.failsafe import guarded
from curvecast.forecasting import Anomaly, Report
from curvecast.forecasting.anomalies.objective_change import JUDGED_KINDS, as_objective_change
from curvecast.forecasting.schedule import LRSchedule
from curvecast.forecasting.stop_request import StopRequest
from curvecast.history import RunHistory
from curvecast.live.cadence import ForecastCadence
from curvecast.live.nonfinite_guard import NonFiniteGuard
from curvecast.live.report_dispatch import ReportDispatch
from curvecast.live.stability_watch import StabilityWatch
from curvecast.live.watch_scorer import WatchScorer
from curvecast.metric_direction import first_return, names_a_coefficient
from curvecast.series import LR, TRAIN_LOSS

__all__ = ["RunBrain"]


class RunBrain:
    """Anomalies as points arrive, forecasts on a cadence, Reports to the actuators, and the ranks' stop vote.

    The bundle (:class:`~curvecast.live.bundle.Curvecast`) calls :meth:`start` when training starts, :meth:`think`
    at the end of each training batch and after each validation, :meth:`guard_finite` before each optimizer step when
    the non-finite guard is on, and :meth:`final_report` at the end of training.

    Args:
        history: the run's history; the brain listens to every point recorded in it.
        watch: the anomaly detectors (scored on a worker thread when ``background``; see :class:`WatchScorer`).
        cadence: when and what to forecast.
        reports: the actuators' side: each Report is dispatched there.
        schedule: the planned LR of every step so far known (the detectors are told it whenever it changes).
        loss_capture: its flushes tell the ranks when the losses they scored last moved to the host.
        forecast_every: optimizer steps between the ranks' votes on a stop (and between forecasts).
        finite_guard: the non-finite guard, when early stopping asks for one.
    """

    def __init__(
        self,
        history: RunHistory,
        watch: StabilityWatch,
        cadence: ForecastCadence,
        reports: ReportDispatch,
        schedule: Any,
        loss_capture: LossCapture,
        forecast_every: int,
        background: bool,
        finite_guard: NonFiniteGuard | None = None,
    ) -> None:
        self.history = history
        self.cadence = cadence
        self.reports = reports
        self.scorer = WatchScorer(watch, background)
        self._watched = watch.watches  # the same series whatever watch a checkpoint restores
        self._schedule = schedule
        self._loss_capture = loss_capture
        self.forecast_every = forecast_every
        self.finite_guard = finite_guard
        self._monitor_moved = False  # the monitor has a point the cadence has not looked at yet
        self._watched_schedule: LRSchedule | None = None
        # The capture's schedule changes only where it records LRs (a changed LR drops it) and at the start of a fit:
        # looked at again only then, not at every step.
        self._lr_moved = True
        self._voted_at: int | None = None
        self._voted_flushes = 0  # the loss capture's flushes scored when the ranks last voted
        self._flushes_before = 0  # the loss capture's flushes at the previous vote check
        self._single_process = True  # read at the start of training: `trainer.world_size` walks the strategy
        history.add_listener(self._on_point)

    @property
    def monitor(self) -> str:
        return self.cadence.monitor

    @property
    def stop(self) -> StopRequest | None:
        return self.reports.stop

    @property
    def watch(self) -> StabilityWatch:
        """The anomaly detectors, every point recorded so far handed to them and scored."""
        return self.scorer.watch

    @watch.setter
    def watch(self, watch: StabilityWatch) -> None:
        """Score with ``watch`` from now on (a restored or a new one); it is told the schedule at the next step."""
        self.scorer.watch = watch
        self._watched_schedule = None
        self._lr_moved = True

    # -- the run's events -------------------------------------------------------------------------------------------

    def new_fit(self) -> None:
        """A fit starts: no stop asked yet, and no vote taken."""
        self.reports.stop = None
        self._voted_at = None

    def start(self, trainer: Any) -> None:
        """Training starts (or resumes)."""
        self._single_process = int(getattr(trainer, "world_size", 1) or 1) == 1
        if self.finite_guard is not None:
            self.finite_guard.on_train_start(trainer)
        if getattr(trainer, "overfit_batches", 0):
            self.watch.overfitting_on_purpose()
        self._follow_schedule()
        self.cadence.start(forecasts=is_global_zero(trainer))  # only rank 0 forecasts

    def _on_point(self, name: str, step: int, value: float) -> None:
        if name == self.monitor:
            self._monitor_moved = True
        elif name == LR:
            self._lr_moved = True
        if self._watched(name):  # the step times, the LR and the like go to no detector
            self.scorer.feed(name, step, value)  # scored at the end of the batch, on the scorer's thread

    def _follow_schedule(self) -> None:
        """Give the detectors the planned schedule, again whenever the capture changed it (an LR found changed by
        hand drops it mid-run): an identity check after each batch of recorded LRs."""
        self._lr_moved = False
        schedule = self._schedule()
        if schedule is not self._watched_schedule:
            self._watched_schedule = schedule
            self.scorer.watch.set_schedule(schedule)

    def think(self, trainer: Any, pl_module: Any, at_validation: bool) -> None:
        """After a training batch or a validation: report what is new, start a forecast if one is due, and vote."""
        if self._lr_moved:
            self._follow_schedule()
        # Most steps nothing new can be there: no point of the monitor, no points scored since the last look, no
        # forecast finished (a check of three flags, where a look at the detectors first waits for their thread).
        if at_validation or self._monitor_moved or self.scorer.unread or self.cadence.ready:
            # Rank 0's work is guarded on its own: a failure there must not make rank 0 skip the vote, a collective
            # the other ranks are already waiting in.
            self._rank_zero_work(trainer, pl_module, at_validation)
        if self._single_process:  # no other rank to hear from (a vote's check inline: every step)
            if self.reports.stop is not None:
                trainer.should_stop = True
            return
        self._vote_stop(trainer)

    def batch_done(self) -> None:
        """This batch's points are scored while the next one trains."""
        self.scorer.hand_over()

    @guarded
    def _rank_zero_work(self, trainer: Any, pl_module: Any, at_validation: bool) -> None:
        moved, self._monitor_moved = self._monitor_moved, False
        if at_validation:
            self.scorer.score_now()  # the validation's report carries every anomaly up to it
        watch = self.scorer.read()  # the points handed over a step ago, scored
        if not (moved or at_validation or watch.has_news or self.cadence.ready):
            return  # no anomaly, no new point of the monitor, no forecast finished: most steps, between host moves
        anomalies = self._collect_anomalies(watch, trainer)  # every rank detects; rank 0 reports
        if not is_global_zero(trainer):
            return
        if anomalies:
            self.dispatch(trainer, pl_module, self.cadence.report(anomalies[-1].step, anomalies=tuple(anomalies)))
        self._collect(trainer, pl_module)  # before submitting: a new job replaces the finished one's result
        started = self.cadence.submit_if_due(at_validation)
        self._collect(trainer, pl_module)  # inline jobs are done already
        if at_validation and not started:
            bare = self.cadence.unforecast_validation()
            if bare is not None:
                self.dispatch(trainer, pl_module, bare)

    @guarded
    def guard_finite(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Before an optimizer step: a non-finite loss drops the step's update and stops the run (every rank decides
        alike, see NonFiniteGuard, and stops itself: no vote to wait for)."""
        if self.finite_guard.on_before_optimizer_step(trainer, optimizer) and is_global_zero(trainer):
            anomaly = self.finite_guard.tripped
            self.dispatch(trainer, pl_module, self.cadence.report(anomaly.step, anomalies=(anomaly,)))

    def _collect(self, trainer: Any, pl_module: Any) -> None:
        report = self.cadence.poll()
        if report is not None:
            self.dispatch(trainer, pl_module, report)

    @guarded
    def final_report(self, trainer: Any, pl_module: Any) -> None:
        """At the end of training: the anomalies of the last steps, then the forecasts still to come."""
        self.scorer.score_now()
        if is_global_zero(trainer):
            anomalies = self._collect_anomalies(self.scorer.watch, trainer)  # those of the last steps, scored now
            if anomalies:
                self.dispatch(trainer, pl_module, self.cadence.report(anomalies[-1].step, anomalies=tuple(anomalies)))
            reports = self.cadence.finish()
            ended_by = self._ended_by(trainer)
            if ended_by is not None:
                # No forecast to a horizon the run will not reach: the last report says where it ended, and why.
                if not reports:
                    last = self.history.last(self.monitor)
                    reports = [self.cadence.report(optimizer_step_index(trainer) if last is None else int(last[0]))]
                reports = [replace(r, forecast=None, target_chance=None) for r in reports]
                reports[-1] = replace(reports[-1], ended_by=ended_by)
            for report in reports:
                self.dispatch(trainer, pl_module, report, last=True)

    def _ended_by(self, trainer: Any) -> str | None:
        """What ended the run before its planned end, when curvecast did not stop it (None: it reached the end, it
        was stopped by curvecast, or its length is unknown)."""
        horizon = self.cadence.horizon()
        if horizon is None or self.reports.stop is not None or not getattr(trainer, "should_stop", False):
            return None
        if self.finite_guard is not None and self.finite_guard.tripped is not None:
            return None  # curvecast's own stop, on a NaN loss
        if optimizer_step_index(trainer, after_step=True) >= horizon - 1:
            return None  # the last step was taken: the flag changed nothing
        return stopped_by(trainer)

    def _collect_anomalies(self, watch: StabilityWatch, trainer: Any) -> list[Anomaly]:
        """What the detectors found since the last look, less the non-finite loss the guard stopped the run on (it
        was reported then; its losses reach the detectors with the stop). A warning on the training loss of a run
        that logs an RL agent's return beside it is a note (``StabilityWatch.loss_beside_return``): the logged names
        are read then, when an anomaly of the loss is there to judge, not at every step. So is the history, for a
        weight of the objective's terms that moved over a climb of a loss (:meth:`_objective_changes`)."""
        tripped = self.finite_guard.tripped if self.finite_guard is not None else None
        found = [a for a in watch.collect() if not _same_event(a, tripped)]
        if not watch.loss_is_auxiliary and any(a.series == TRAIN_LOSS for a in found):
            logged = first_return(trainer.callback_metrics)
            if logged is not None:
                watch.loss_beside_return(logged)
                found = [watch.auxiliary(a) for a in found]
        return self._objective_changes(found)

    def _objective_changes(self, found: list[Anomaly]) -> list[Anomaly]:
        """A climb, an instability warning or a plateau of the training loss (or of a monitored loss) is a note where
        a weight of the objective's terms, which the loss capture records as the module logs it (``beta``,
        ``kl_weight``), moved over it: the objective changed (see ``objective_change``). A critical one stays."""
        losses = {TRAIN_LOSS, self.monitor} if self.cadence.mode == "min" else {TRAIN_LOSS}
        judged = [
            a.kind in JUDGED_KINDS and a.severity != "critical" and a.series in losses and a.series in self.history
            for a in found
        ]
        if not any(judged):
            return found
        coefficients = {name: _points(self.history, name) for name in self.history.names() if names_a_coefficient(name)}
        if not coefficients:
            return found
        return [
            as_objective_change(a, _points(self.history, a.series), coefficients) if judge else a
            for a, judge in zip(found, judged, strict=True)
        ]

    def dispatch(self, trainer: Any, pl_module: Any, report: Report, last: bool = False) -> None:
        self.reports.dispatch(trainer, pl_module, report, last)

    def _vote_stop(self, trainer: Any) -> None:
        """Every rank votes at the same steps; rank 0 carries the forecast, so any rank asking stops all of them.

        Under DDP the ranks vote on the forecast cadence and once the losses last moved to the host are scored (the
        same steps on every rank): a divergence stops the run at the step it was found.
        """
        step = int(trainer.global_step)
        flushes = self._loss_capture.flushes
        # The points of a flush are scored by the end of the next batch on the scorer's thread (at once inline).
        scored = self._flushes_before if self.scorer.background else flushes
        self._flushes_before = flushes
        due = step % self.forecast_every == 0 or scored != self._voted_flushes
        if not due or step == self._voted_at:
            return  # a collective per micro-batch would cost every step a round trip between ranks
        self._voted_at, self._voted_flushes = step, scored
        if trainer.strategy.reduce_boolean_decision(self.stop is not None, all=False):
            trainer.should_stop = True

    def close(self) -> None:
        """Safe to call twice."""
        self.cadence.close()
        self.scorer.close()


def _points(history: RunHistory, name: str) -> tuple[Any, Any]:
    series = history.series(name)
    return series.steps, series.values


def _same_event(anomaly: Anomaly, other: Anomaly | None) -> bool:
    return other is not None and (anomaly.kind, anomaly.step, anomaly.series) == (other.kind, other.step, other.series)
