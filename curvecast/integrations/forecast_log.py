"""ForecastLogger: each forecast as one line in the log, and the forecast final value in the progress bar.

The line goes to the ``"curvecast"`` logger at INFO, which reaches the console of a plain script (see
:mod:`curvecast.failsafe`)::

    curvecast step 300/1000: loss 2.41 (best 2.38) -> 2.05 at step 1000 (80%: 1.98..2.12); target 2.1: P=0.71
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import numpy as np

from curvecast.forecasting.report import Report
from curvecast.live.actuator import Actuator

__all__ = ["PROGRESS_BAR_NAME", "ForecastLogger"]

log = logging.getLogger("curvecast")

PROGRESS_BAR_NAME = "forecast"  # the forecast final value in Lightning's progress bar (never sent to the loggers)


class ForecastLogger(Actuator):
    """Actuator: each forecast in one line on the ``"curvecast"`` logger, and its final value in the progress bar.

    Args:
        interval: probability of the central interval in the line.
        progress_bar: show the forecast final value in Lightning's progress bar as ``forecast=...`` (through
            ``LightningModule.log(..., prog_bar=True, logger=False)``: nothing reaches the loggers).
    """

    def __init__(self, interval: float = 0.8, progress_bar: bool = True) -> None:
        if not 0.0 < interval < 1.0:
            raise ValueError(f"Expected `interval` to lie in (0, 1), but got {interval}")
        self.interval = interval
        self.progress_bar = progress_bar
        self.lines: list[str] = []  # the most recent lines (bounded)

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        forecast = report.forecast
        if forecast is None or not forecast.ok:
            return
        line = self.describe(report)
        self.lines = [*self.lines[-99:], line]
        log.info(line)
        if self.progress_bar and pl_module is not None:
            # A hook where Lightning forbids logging (after validation) raises: the bar then keeps its last value.
            with contextlib.suppress(Exception):
                pl_module.log(PROGRESS_BAR_NAME, float(forecast.final), prog_bar=True, logger=False)

    def describe(self, report: Report) -> str:
        """The one line for ``report`` (which carries a forecast)."""
        forecast = report.forecast
        lo, hi = forecast.interval(self.interval)
        where = f"step {report.step}" + (f"/{report.horizon}" if report.horizon else "")
        seen = self._observed(report.monitor)
        text = (
            f"curvecast {where}: {report.monitor}{seen} -> {_fmt(forecast.final)} at step {forecast.horizon} "
            f"({self.interval:.0%}: {_fmt(lo)}..{_fmt(hi)})"
        )
        if report.target is not None:
            mode = self.run.mode if self.run is not None else "min"
            below = forecast.prob_below(report.target)
            chance = below if mode == "min" else 1.0 - below
            reach = forecast.step_to_reach(report.target) if mode == "min" else None
            text += f"; target {_fmt(report.target)}: P={chance:.2f}" + (f", near step {reach}" if reach else "")
        return text

    def _observed(self, monitor: str) -> str:
        history = self.run.history if self.run is not None else None
        if history is None or monitor not in history:
            return ""
        values = history.series(monitor).values
        values = values[np.isfinite(values)]
        if not len(values):
            return ""
        best = values.min() if self.run is None or self.run.mode == "min" else values.max()
        return f" {_fmt(values[-1])} (best {_fmt(best)})"


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"
