"""TensorBoardReporter: forecasts as scalars and as data for TensorBoard's curvecast tab, and a Margin chart.

What lands in the Trainer's TensorBoard run (``version_N``), for a monitored series ``loss``:

- ``curvecast/forecast/final``, ``final_lo``, ``final_hi`` (the central interval, 80% by default),
  ``curvecast/forecast/step_to_target`` (only while the target is still ahead and forecast to be reached) and
  ``curvecast/forecast/prob_target`` (the chance the target is reached at the horizon), each at the step the forecast
  was made from. Tags only ever move forward in steps: TensorBoard's loaders disagree on a rewritten step.
- ``curvecast/loss``, ``curvecast/lr`` and the sensors' measures: the observed series, on the same step axis as
  Lightning's own ``self.log`` points, at most ``observed_points`` points of the monitor and ``sensor_points`` of
  each other series per report. A series thinned keeps the highest and lowest of the points it thins, so a one-step
  spike is written at its own value.
- The curvecast tab's data (see :mod:`curvecast.tensorboard_plugin.summary`), in the run itself: the forecast curve
  with its band at most once per ``curve_every`` steps and at the end, the planned LR when it is first known or
  changes, the anomalies when new ones arrive. No sub-run per forecast: the run selector lists the run once.
- ``curvecast/early_stopping/stopped`` = 1 at the step a stop was decided (a stop of another callback: the last
  forecast document says so, without a forecast).
- The alerts, as markdown under the text tag ``curvecast/alerts`` (:func:`write_alert_text`).
- ``curvecast/forecast/figure`` (with ``figures=True``): a figure of the last forecast (observed curve, fit, forecast,
  interval, target), for viewers without the curvecast tab.
- A custom-scalars layout (tab "Custom Scalars", category ``curvecast``): a Margin chart of the final forecast with its
  interval, and a Multiline chart of ``curvecast/loss`` across runs.

Everything lands in the run itself: no sub-run, so TensorBoard's run selector lists each run once, and no Scalars
chart repeats what the curvecast tab draws. The run's hyperparameters are Lightning's to write (``TensorBoardLogger``
writes the module's ``save_hyperparameters`` into the run, tab "HParams"); the curvecast tab compares the runs'
forecasts.

This module alone writes into the run's event file; what the tab's documents hold is built in
:mod:`curvecast.integrations.tab_documents`. A write that fails (a full disk, a log directory that cannot be written)
is one :class:`~curvecast.failsafe.CurvecastWarning`; the run goes on, and the next report tries again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from curvecast._lightning import logging_suppressed, tensorboard_writer
from curvecast.failsafe import warn_once
from curvecast.forecasting.report import Report
from curvecast.integrations.actuator import Actuator
from curvecast.integrations.forecast_scalars import forecast_scalars
from curvecast.integrations.tab_documents import RecentAnomalies, ended_document, forecast_document, planned_lr_document
from curvecast.integrations.tensorboard_absent import say_where_forecasts_go
from curvecast.integrations.tensorboard_disk import MIN_FREE_BYTES, disk_has_room, write_alert_text
from curvecast.logreaders import LogReadError
from curvecast.logreaders.events import is_event_file, read_event_dir
from curvecast.render.figure import forecast_figure
from curvecast.series import (
    DATA_WAIT_FRACTION,
    GNS_B_SIMPLE,
    GRAD_NORM,
    LR,
    METRIC_PREFIX,
    SAMPLES_PER_SEC,
    STEP_TIME,
    STOPPED_TAG,
    logged_name,
    throughput,
)
from curvecast.series import FORECAST_PREFIX as PREFIX
from curvecast.state_checks import checked_mapping, require_keys
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, PLANNED_LR_TAG, json_summary
from curvecast.worker_thread import SerialJobs

__all__ = ["END_WRITE_S", "MIN_FREE_BYTES", "TensorBoardReporter", "disk_has_room", "write_alert_text"]

# What the sensors measure, written beside the forecasts (when recorded): the bundle's sensors log nothing themselves.
SENSOR_SERIES = (LR, GRAD_NORM, GNS_B_SIMPLE, SAMPLES_PER_SEC, DATA_WAIT_FRACTION, STEP_TIME, throughput("mfu"))
# Most points of the monitor in a run of known length (TensorBoard's own loader keeps 1000 per tag); a fifth of it
# for each other series.
_RUN_POINTS = 2000

# The longest the end of training waits for the reports still being written to TensorBoard.
END_WRITE_S = 10.0


class TensorBoardReporter(Actuator):
    """Actuator: write each report's forecast to the Trainer's TensorBoard logger (rank 0; reports arrive there only).

    Without a TensorBoard logger it warns once and does nothing (alerts still reach Python logging).

    Args:
        interval: probability of the central interval written as ``final_lo`` / ``final_hi``.
        curve_every: fewest steps between two forecast curves written for the curvecast tab (the last forecast is
            always written); None: a twentieth of the horizon, so a run writes about 20 curves however long it is.
        curve_points: points in each forecast curve.
        observed_points: most points of the observed monitor written per report, evenly spaced over the steps since
            the previous report.
        sensor_points: the same for each of the other series (the LR, the gradient norm, the throughput measures).
        figures: write a matplotlib figure of the run's last forecast, once, at the end (rendering one costs 0.1-0.2 s
            of CPU, on the reporter's writing thread, and the PNG about 20 KB: off by default, as the curvecast tab
            draws the same chart from the data already written).

    The writing is done on a thread of its own ("curvecast-tensorboard"), report after report; the end of training
    waits for it (at most ``END_WRITE_S``) before Lightning closes its logger.
    """

    def __init__(
        self,
        *,
        interval: float = 0.8,
        curve_every: int | None = None,
        curve_points: int = 50,
        observed_points: int = 25,
        sensor_points: int = 5,
        figures: bool = False,
    ) -> None:
        if not 0.0 < interval < 1.0:
            raise ValueError(f"Expected `interval` to lie in (0, 1), but got {interval}")
        if curve_every is not None and curve_every < 1:
            raise ValueError(f"Expected `curve_every` to be a positive int or None, but got {curve_every}")
        if curve_points < 2:
            raise ValueError(f"Expected `curve_points` to be at least 2, but got {curve_points}")
        if observed_points < 1:
            raise ValueError(f"Expected `observed_points` to be a positive int, but got {observed_points}")
        if sensor_points < 1:
            raise ValueError(f"Expected `sensor_points` to be a positive int, but got {sensor_points}")
        self.interval = interval
        self.curve_every = curve_every
        self.curve_points = curve_points
        self.observed_points = observed_points
        self.sensor_points = sensor_points
        self.figures = figures
        self.forwarded = False  # the bundle sends the forecasts to the Trainer's other loggers
        self._writer: Any = None
        self._last_scalar_step = -1
        self._last_written: dict[str, float] = {}  # per observed series: the last step considered
        self._last_point: dict[str, float] = {}  # per observed series: the last step written
        self._spare: dict[str, float] = {}  # per observed series: the fraction of a point its gaps left unwritten
        self._first_step_to_write = -math.inf
        self._started_at = 0  # the step the current fit started from (see on_train_start)
        self._last_curve_step: int | None = None
        self._anomalies = RecentAnomalies()
        self._planned_lr: list[float | None] | None = None  # the planned LR last written for the tab
        self._planned_schedule: Any = None  # the schedule object it was sampled from
        self._writes = SerialJobs("curvecast-tensorboard", "a TensorBoard write")

    state_name = "tensorboard"  # the tab's recent anomalies: a resumed run's tab still lists those before it

    def state_dict(self) -> dict[str, Any]:
        self.settle()  # the recent anomalies as the writes in flight leave them
        return {"tab": self._anomalies.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the tab's recent anomalies (a damaged state raises and changes nothing)."""
        state = checked_mapping("the TensorBoardReporter state", state_dict)
        require_keys("the TensorBoardReporter state", state, ("tab",))
        self.settle()
        self._anomalies.load_state_dict(state["tab"])

    # -- the actuator ---------------------------------------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Called by the bundle once the loops are restored: the step this fit starts from (0 unless resumed)."""
        self.settle()
        self._started_at = int(getattr(trainer, "global_step", 0) or 0)

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None:
            if not logging_suppressed(trainer):  # `fast_dev_run`: the user's loggers are there, silenced by Lightning
                say_where_forecasts_go(trainer, self.forwarded)
            return
        # The writing (event protobufs, the tab's JSON documents, each series thinned: 1-3 ms a report) is done on a
        # thread of its own, report after report in order: a report and its series never change once made.
        self._writes.hand(lambda: self._write_if_room(writer, report))

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every report handed so far is written (at most ``timeout`` seconds); return whether it is."""
        return self._writes.settle(timeout)

    def close(self) -> None:
        """Finish the writes handed so far (at most ``END_WRITE_S``), before Lightning closes its logger."""
        if not self._writes.close(END_WRITE_S):
            warn_once(
                f"curvecast: TensorBoard writes still running {END_WRITE_S:g} s after the end of training were left "
                "behind (the disk is slow, or the machine busy); the event file may lack the last forecast.",
                key="tensorboard-late",
            )

    def _write_if_room(self, writer: Any, report: Report) -> None:
        if not disk_has_room(writer.log_dir):
            return  # the report's points are written with a later report, once the disk has room again
        try:
            self._write_report(writer, report)
        except OSError as error:  # ENOSPC, EACCES, EROFS...: the run matters more than its charts
            warn_once(
                f"curvecast: could not write to TensorBoard at {getattr(writer, 'log_dir', '?')} "
                f"({type(error).__name__}: {error}); training goes on, and each later forecast tries again.",
                key="tensorboard-write",
            )

    def _write_report(self, writer: Any, report: Report) -> None:
        if writer is not self._writer:  # a new fit (or a new logger): start the bookkeeping over
            self._writer = writer
            # A resumed fit may write into the log directory of the run it resumes: steps before the one it starts
            # from are already there and must not be written again.
            resumed_from = self._started_at
            # A run that went on past its checkpoint before it stopped wrote steps the resumed fit will reach again:
            # what is already in the directory is read back once, so no tag gets a step twice or out of order.
            written = _last_step_written(writer.log_dir) if resumed_from > 0 else -1
            self._last_scalar_step = max(resumed_from - 1, written)
            self._last_written = {}
            self._last_point = {}
            self._spare = {}
            self._first_step_to_write = max(resumed_from - 1, written) if resumed_from > 0 else -math.inf
            self._last_curve_step = None
            self._planned_lr = None  # a new fit or a new writer: the planned schedule is written again
            self._planned_schedule = None
            writer.add_custom_scalars(self._layout(report.monitor))
        self._write_actual(writer, report)
        if report.anomalies:
            self._write_anomalies(writer, report)
        if report.stop is not None:
            writer.add_scalar(STOPPED_TAG, 1.0, report.stop.step)
        if report.ended_by is not None:  # stopped short of its planned end: the tab says so, and draws no forecast
            step = max(report.stop_step, -1 if self._last_curve_step is None else self._last_curve_step + 1)
            self._last_curve_step = step
            _add_document(writer, FORECAST_TAG, ended_document(report, self.interval), step)
        forecast = report.forecast
        if forecast is None or not forecast.ok or report.step <= self._last_scalar_step:
            writer.flush()
            return
        self._last_scalar_step = report.step
        self._write_scalars(writer, report)
        self._write_planned_lr(writer, report)
        if self._curve_due(report):
            self._last_curve_step = report.step
            document = forecast_document(report, self._scalars(report), self.interval, self.curve_points)
            _add_document(writer, FORECAST_TAG, document, report.step)
        if self.figures and report.is_last:
            self._write_figure(writer, report)
        writer.flush()

    # -- pieces ---------------------------------------------------------------------------------------------------

    def _layout(self, monitor: str) -> dict[str, Any]:
        return {
            "curvecast": {
                f"forecast of the final {monitor} ({self.interval:.0%} interval)": [
                    "Margin",
                    [PREFIX + "final", PREFIX + "final_lo", PREFIX + "final_hi"],
                ],
                f"{monitor}: observed (the forecast is in the curvecast tab)": [
                    "Multiline",
                    [f"^{logged_name(monitor)}$"],
                ],
                "chance of reaching the target": ["Multiline", [f"^{PREFIX}prob_target$"]],
                "forecast step to reach the target": ["Multiline", [f"^{PREFIX}step_to_target$"]],
            }
        }

    def _write_actual(self, writer: Any, report: Report) -> None:
        """The observed monitor, the LR and the sensors' measures since the last report, under ``curvecast/<name>``."""
        monitor, horizon = report.monitor, report.horizon
        self._write_series(writer, report, monitor, self.observed_points, _gap(horizon, _RUN_POINTS))
        for name in SENSOR_SERIES:
            if name != monitor:
                self._write_series(writer, report, name, self.sensor_points, _gap(horizon, _RUN_POINTS // 5))

    def _write_series(self, writer: Any, report: Report, name: str, points: int, gap: float) -> None:
        """The finite points of ``name`` recorded since the last report, at most ``points`` of them and at most one
        per ``gap`` steps since the last point written: what is written grows with the reports, not with the steps,
        and a run of known length writes a bounded number of points per series (each costs about 70 bytes of event
        file). Thinned, they keep the highest and lowest point (:func:`_kept`): a spike is written at its value."""
        series = report.series.get(name)
        if series is None:
            return
        last = self._last_written.get(name, self._first_step_to_write)
        new = np.flatnonzero(series.steps > last)
        new = new[np.isfinite(series.values[new])]
        if not new.size:
            return
        previous = self._last_point.get(name, -math.inf)
        # Points the steps since the last one written make room for, with what earlier reports left over: the run's
        # total stays within its length over `gap`, and reports of any spacing add up to it.
        room = math.inf
        if gap > 0 and math.isfinite(previous):
            room = (series.steps[new[-1]] - previous) / gap + self._spare.get(name, 0.0)
        count = int(min(points, new.size, room))
        if count < 1:
            return  # too close to the last point written: these points are weighed again with the next report
        picked = new[_kept(series.steps[new], series.values[new], count, previous)]
        tag = logged_name(name)
        written = 0
        for step, value in zip(series.steps[picked].tolist(), series.values[picked].tolist(), strict=True):
            step = int(round(step))
            if step > last:
                writer.add_scalar(tag, value, step)
                last = previous = step
                written += 1
        if math.isfinite(room):
            self._spare[name] = min(room - written, 1.0)
        self._last_point[name] = previous
        self._last_written[name] = max(last, float(series.steps[new[-1]]))

    def _scalars(self, report: Report) -> dict[str, float]:
        return forecast_scalars(report, self.interval)

    def _write_scalars(self, writer: Any, report: Report) -> None:
        for name, value in self._scalars(report).items():
            writer.add_scalar(PREFIX + name, value, report.step)

    def _curve_due(self, report: Report) -> bool:
        if self._last_curve_step is None or report.is_last:
            return True
        every = self.curve_every or max((report.horizon or 0) // 20, 1)
        return report.step - self._last_curve_step >= every

    def _write_planned_lr(self, writer: Any, report: Report) -> None:
        """The planned LR when it is first known or has changed (the capture drops a schedule found changed by
        hand): one document per schedule, not one per report."""
        if report.schedule is None or report.schedule is self._planned_schedule:
            return  # the capture shares one schedule object until it changes: 200 LR lookups saved per report
        self._planned_schedule = report.schedule
        document = planned_lr_document(report.schedule)
        if document["lrs"] != self._planned_lr:
            self._planned_lr = document["lrs"]
            _add_document(writer, PLANNED_LR_TAG, document, report.step)

    def _write_anomalies(self, writer: Any, report: Report) -> None:
        """The run's recent anomalies, when ``report`` brings new ones (or escalations), all in one document."""
        document = self._anomalies.add(report.anomalies)
        if document is not None:
            # Each document at a later step than the one before (an anomaly can be reported at an earlier step than
            # the last one): the latest document is then also the last by step, whichever loader sorts them.
            step = max(int(report.step), self._anomalies.last_step + 1)
            self._anomalies.last_step = step
            _add_document(writer, EVENTS_TAG, document, step)

    def _write_figure(self, writer: Any, report: Report) -> None:
        series = report.series.get(report.monitor)
        if series is None:
            return
        fig = forecast_figure(
            series.steps, series.values, report.forecast, target=report.target, interval=self.interval,
            label=report.monitor, anomalies=report.anomalies,
        )  # fmt: skip
        writer.add_figure(PREFIX + "figure", fig, report.step, close=True)


def _last_step_written(log_dir: str) -> int:
    """The last step of any curvecast tag in the event files of ``log_dir`` itself (-1: none, or unreadable)."""
    try:
        files = [path for path in Path(log_dir).iterdir() if path.is_file() and is_event_file(path)]
        if not files:
            return -1
        log = read_event_dir(Path(log_dir), files)
    except (LogReadError, OSError):
        return -1
    steps = [int(c.steps[-1]) for name, c in log.curves.items() if name.startswith(METRIC_PREFIX) and len(c)]
    return max(steps, default=-1)


def _kept(steps: np.ndarray, values: np.ndarray, count: int, after: float) -> np.ndarray:
    """The indices of ``count`` of the points (``steps``, ``values``) to write, increasing: those nearest to evenly
    spaced steps from ``after`` (the last step written, or -inf) to the last point, which is always kept (the curve
    reaches the report's step), with the highest and the lowest point in place of the picks nearest them, so that a
    spike (or a dip) is written at its own value however the points fall."""
    n = values.size
    if count >= n:
        return np.arange(n)
    if math.isfinite(after):
        targets = after + (steps[-1] - after) * np.arange(1, count + 1) / count
        right = np.clip(np.searchsorted(steps, targets), 1, n - 1)
        picks = np.where(targets - steps[right - 1] <= steps[right] - targets, right - 1, right)
    else:
        picks = np.linspace(0, n - 1, count).round().astype(int)
    picks = np.unique(np.append(picks[:-1], n - 1))
    centre = float(np.median(values))
    for extreme in (int(np.argmax(values)), int(np.argmin(values))):
        if extreme in picks or values[extreme] == centre:
            continue
        movable = np.flatnonzero((picks != n - 1) & ~np.isin(picks, (np.argmax(values), np.argmin(values))))
        if movable.size:
            picks[movable[np.argmin(np.abs(picks[movable] - extreme))]] = extreme
    return np.unique(picks)


def _gap(horizon: int | None, run_points: int) -> float:
    """The fewest steps between two written points so that a run to ``horizon`` writes at most ``run_points``."""
    return horizon / run_points if horizon else 0.0


def _add_document(writer: Any, tag: str, document: dict[str, Any], step: int) -> None:
    """One document of the curvecast tab into the writer's own event file, at ``step``."""
    file_writer = writer._get_file_writer() if hasattr(writer, "_get_file_writer") else writer.file_writer
    file_writer.add_summary(json_summary(tag, document), int(step))
