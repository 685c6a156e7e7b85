"""TensorBoardReporter: forecasts as scalars, a Margin chart, forecast curves beside the actual one, figures, hparams.

What lands in the Trainer's TensorBoard run (``version_N``), for a monitored series ``loss``:

- ``curvecast/forecast/final``, ``final_lo``, ``final_hi`` (the central interval, 80% by default),
  ``curvecast/forecast/step_to_target`` (only while the target is still ahead and forecast to be reached) and
  ``curvecast/forecast/prob_target`` (the chance the target is reached at the horizon), each at the step the forecast
  was made from. Tags only ever move forward in steps: TensorBoard's loaders disagree on a rewritten step.
- ``curvecast/loss``: the observed series, on the same step axis as Lightning's own ``self.log`` points.
- ``curvecast/forecast/figure``: a figure (observed curve, fit, forecast, interval, target) of the last forecast.
- A custom-scalars layout (tab "Custom Scalars", category ``curvecast``): a Margin chart of the final forecast with its
  interval, and a Multiline chart of ``curvecast/loss`` across runs.
- Sub-run ``curvecast_forecast/step_<N>`` per forecast curve: the forecast from step N to the horizon under the same
  tag ``curvecast/loss``, so the Scalars tab overlays it on the observed curve (the sub-run with the largest N is
  the latest forecast). A run's past steps cannot be rewritten, so each forecast gets its own sub-run; to bound the
  clutter one is written per ``curve_every`` steps (a twentieth of the run by default) and at the end.
- Sub-run ``curvecast_summary``: an hparams session (tab "HParams") whose metrics (final forecast, interval, chance of
  reaching the target, best and last observed value, whether the run was stopped early) are updated at every report,
  so the row shows the final summary once the run ends.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from curvecast._lightning import tensorboard_writer
from curvecast.failsafe import warn_once
from curvecast.forecasting.report import Report
from curvecast.integrations.forecast_figure import forecast_figure
from curvecast.live.actuator import Actuator, RunContext
from curvecast.series import (
    DATA_WAIT_FRACTION,
    GNS_B_SIMPLE,
    GRAD_NORM,
    LR,
    METRIC_PREFIX,
    SAMPLES_PER_SEC,
    STEP_TIME,
    logged_name,
    throughput,
)
from curvecast.series import FORECAST_PREFIX as PREFIX

__all__ = ["TensorBoardReporter"]

SUMMARY_RUN = "curvecast_summary"
CURVE_RUNS = "curvecast_forecast"
# What the sensors measure, written beside the forecasts (when recorded): the bundle's sensors log nothing themselves.
SENSOR_SERIES = (LR, GRAD_NORM, GNS_B_SIMPLE, SAMPLES_PER_SEC, DATA_WAIT_FRACTION, STEP_TIME, throughput("mfu"))
_SUMMARY_METRICS = ("final", "final_lo", "final_hi", "prob_target", "step_to_target", "best", "last", "stopped_early")


class TensorBoardReporter(Actuator):
    """Actuator: write each report's forecast to the Trainer's TensorBoard logger (rank 0; reports arrive there only).

    Without a TensorBoard logger it warns once and does nothing (alerts still reach Python logging).

    Args:
        history: the run's :class:`~curvecast.history.RunHistory`, for the observed curve; None takes the run's, at
            :meth:`bind`.
        interval: probability of the central interval written as ``final_lo`` / ``final_hi``.
        curve_every: fewest steps between two forecast-curve sub-runs; None: a twentieth of the horizon.
        curve_points: points in each forecast-curve sub-run.
        figures: write a matplotlib figure of the run's last forecast (rendering one costs 0.1-0.2 s of CPU on the
            training thread: too much for every forecast of a fast run).
        summary: write the hparams summary sub-run.
    """

    def __init__(
        self,
        history: Any = None,
        interval: float = 0.8,
        curve_every: int | None = None,
        curve_points: int = 100,
        figures: bool = True,
        summary: bool = True,
    ) -> None:
        if not 0.0 < interval < 1.0:
            raise ValueError(f"Expected `interval` to lie in (0, 1), but got {interval}")
        if curve_every is not None and curve_every < 1:
            raise ValueError(f"Expected `curve_every` to be a positive int or None, but got {curve_every}")
        if curve_points < 2:
            raise ValueError(f"Expected `curve_points` to be at least 2, but got {curve_points}")
        self.history = history
        self.mode = "min"  # the run's, at bind: "max" when the target is reached from below (an accuracy)
        self.interval = interval
        self.curve_every = curve_every
        self.curve_points = curve_points
        self.figures = figures
        self.summary = summary
        self._writer: Any = None
        self._last_scalar_step = -1
        self._last_written: dict[str, float] = {}  # per observed series: the last step written
        self._first_step_to_write = -math.inf
        self._started_at = 0  # the step the current fit started from (see on_train_start)
        self._last_curve_step: int | None = None
        self._summary_writer: Any = None
        self._hparams: dict[str, Any] = {}

    def bind(self, run: RunContext) -> None:
        """Take the run's history (unless one was given), mode and settings."""
        super().bind(run)
        if self.history is None:
            self.history = run.history
        self.mode = run.mode
        self._hparams = {
            logged_name("monitor"): run.monitor,
            logged_name("mode"): run.mode,
            logged_name("target"): run.target,
            logged_name("forecast_every"): run.forecast_every,
        }

    # -- the actuator ---------------------------------------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Called by the bundle once the loops are restored: the step this fit starts from (0 unless resumed)."""
        self._started_at = int(getattr(trainer, "global_step", 0) or 0)

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None:
            warn_once(
                "curvecast: the Trainer has no TensorBoardLogger, so forecasts are not written to TensorBoard "
                "(alerts still go to the 'curvecast' logger); add `logger=TensorBoardLogger(...)` to see them.",
                key="no-tensorboard",
            )
            return
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
            self._first_step_to_write = max(resumed_from - 1, written) if resumed_from > 0 else -math.inf
            self._last_curve_step = None
            self._close_summary()
            writer.add_custom_scalars(self._layout(report.monitor))
        self._write_actual(writer, report.monitor)
        forecast = report.forecast
        if forecast is None or not forecast.ok or report.step <= self._last_scalar_step:
            writer.flush()
            return
        self._last_scalar_step = report.step
        self._write_scalars(writer, report)
        if self._curve_due(trainer, report):
            self._last_curve_step = report.step
            self._write_curve_run(writer, report)
        if self.figures and _is_last(trainer, report):
            self._write_figure(writer, report)
        if self.summary:
            self._write_summary(writer, trainer, pl_module, report)
        writer.flush()

    # -- pieces ---------------------------------------------------------------------------------------------------

    def _layout(self, monitor: str) -> dict[str, Any]:
        return {
            "curvecast": {
                f"forecast of the final {monitor} ({self.interval:.0%} interval)": [
                    "Margin",
                    [PREFIX + "final", PREFIX + "final_lo", PREFIX + "final_hi"],
                ],
                f"{monitor}: observed and forecast (runs {CURVE_RUNS}/step_N)": [
                    "Multiline",
                    [f"^{logged_name(monitor)}$"],
                ],
                "chance of reaching the target": ["Multiline", [f"^{PREFIX}prob_target$"]],
                "forecast step to reach the target": ["Multiline", [f"^{PREFIX}step_to_target$"]],
            }
        }

    def _write_actual(self, writer: Any, monitor: str) -> None:
        """The observed monitor, the LR and the sensors' measures since the last report, under ``curvecast/<name>``."""
        for name in (monitor, *SENSOR_SERIES):
            self._write_series(writer, name)

    def _write_series(self, writer: Any, name: str) -> None:
        """The points of ``name`` recorded since the last report, at most ``curve_points`` of them, evenly spaced:
        what is written grows with the reports, not with the steps (Lightning already logs every step it is asked)."""
        if self.history is None or name not in self.history:
            return
        series = self.history.series(name)
        last = self._last_written.get(name, self._first_step_to_write)
        new = np.flatnonzero(series.steps > last)
        if not new.size:
            return
        picked = new[np.unique(np.linspace(0, new.size - 1, min(new.size, self.curve_points)).round().astype(int))]
        tag = logged_name(name)
        for step, value in zip(series.steps[picked].tolist(), series.values[picked].tolist(), strict=True):
            step = int(round(step))
            if step > last and math.isfinite(value):
                writer.add_scalar(tag, value, step)
                last = step
        self._last_written[name] = max(last, float(series.steps[new[-1]]))

    def _scalars(self, report: Report) -> dict[str, float]:
        forecast = report.forecast
        lo, hi = forecast.interval(self.interval)
        scalars = {"final": float(forecast.final), "final_lo": float(lo), "final_hi": float(hi)}
        if report.target is not None:
            below = forecast.prob_below(report.target)
            scalars["prob_target"] = float(below if self.mode == "min" else 1.0 - below)
            # Once the run has reached the target the step it did is history, not a forecast: the scalar stops.
            reach = forecast.step_to_reach(report.target) if report.reached_at is None and self.mode == "min" else None
            if reach is not None:
                scalars["step_to_target"] = float(reach)
        return {k: v for k, v in scalars.items() if math.isfinite(v)}

    def _write_scalars(self, writer: Any, report: Report) -> None:
        for name, value in self._scalars(report).items():
            writer.add_scalar(PREFIX + name, value, report.step)

    def _curve_due(self, trainer: Any, report: Report) -> bool:
        if self._last_curve_step is None or _is_last(trainer, report):
            return True
        every = self.curve_every or max((report.horizon or 0) // 20, 1)
        return report.step - self._last_curve_step >= every

    def _write_curve_run(self, writer: Any, report: Report) -> None:
        from torch.utils.tensorboard import SummaryWriter

        forecast = report.forecast
        horizon = int(forecast.horizon)
        if horizon <= report.step:
            return
        steps = np.unique(np.linspace(report.step, horizon, self.curve_points).round().astype(int))
        values = forecast.predict(steps)
        path = os.path.join(writer.log_dir, CURVE_RUNS, f"step_{report.step:08d}")
        with SummaryWriter(log_dir=path) as curve:  # one small event file per forecast curve
            for step, value in zip(steps.tolist(), values.tolist(), strict=True):
                if math.isfinite(value):
                    curve.add_scalar(logged_name(report.monitor), value, step)

    def _write_figure(self, writer: Any, report: Report) -> None:
        if self.history is None or report.monitor not in self.history:
            return
        series = self.history.series(report.monitor)
        fig = forecast_figure(
            series.steps, series.values, report.forecast, report.target, self.interval, title=report.monitor
        )
        writer.add_figure(PREFIX + "figure", fig, report.step, close=True)

    def _write_summary(self, writer: Any, trainer: Any, pl_module: Any, report: Report) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        if self._summary_writer is None:
            self._summary_writer = SummaryWriter(log_dir=os.path.join(writer.log_dir, SUMMARY_RUN))
            params = {**_module_hparams(pl_module), **self._hparams, logged_name("horizon"): report.horizon}
            params = {k: v for k, v in params.items() if isinstance(v, (bool, int, float, str))}
            metrics = {logged_name(f"summary/{name}"): 0.0 for name in _SUMMARY_METRICS}
            # Written once, without hparams()'s own scalars: the metric values come from the scalars below.
            for proto in hparams(params, metrics):
                self._summary_writer.file_writer.add_summary(proto)
        values = self._scalars(report)
        if self.history is not None and report.monitor in self.history:
            observed = self.history.series(report.monitor).values
            observed = observed[np.isfinite(observed)]
            if len(observed):
                values["best"] = float(observed.min() if self.mode == "min" else observed.max())
                values["last"] = float(observed[-1])
        values["stopped_early"] = float(self._stop_requested() or bool(getattr(trainer, "should_stop", False)))
        for name, value in values.items():
            self._summary_writer.add_scalar(logged_name(f"summary/{name}"), value, report.step)
        self._summary_writer.flush()

    def _stop_requested(self) -> bool:
        return self.run is not None and self.run.stop_requested()

    def _close_summary(self) -> None:
        if self._summary_writer is not None:
            self._summary_writer.close()
            self._summary_writer = None

    def close(self) -> None:
        """Close the summary sub-run's file (the bundle may call it at the end of training; safe to call twice)."""
        self._close_summary()


def _last_step_written(log_dir: str) -> int:
    """The last step of any curvecast tag in the event files of ``log_dir`` itself (-1: none, or unreadable)."""
    from pathlib import Path

    from curvecast.offline.logreaders import LogReadError
    from curvecast.offline.logreaders.events import is_event_file, read_event_dir

    try:
        files = [path for path in Path(log_dir).iterdir() if path.is_file() and is_event_file(path)]
        if not files:
            return -1
        log = read_event_dir(Path(log_dir), files)
    except (LogReadError, OSError):
        return -1
    steps = [int(c.steps[-1]) for name, c in log.curves.items() if name.startswith(METRIC_PREFIX) and len(c)]
    return max(steps, default=-1)


def _is_last(trainer: Any, report: Report) -> bool:
    """Whether this is the run's last report: the horizon is reached or a stop was decided."""
    if report.horizon is not None and report.step >= report.horizon - 1:
        return True
    return bool(getattr(trainer, "should_stop", False))


def _module_hparams(pl_module: Any) -> dict[str, Any]:
    """The module's saved hyperparameters (``save_hyperparameters``), flattened one level, scalars only."""
    try:
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
    except Exception:  # noqa: BLE001 - an odd hparams container is not worth a failure
        return {}
    flat: dict[str, Any] = {}
    for key, value in hparams.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{k}": v for k, v in value.items()})
        else:
            flat[str(key)] = value
    return flat
