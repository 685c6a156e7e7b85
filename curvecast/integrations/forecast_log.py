"""ForecastLogger: each forecast as one line in the log, and the forecast final value in the progress bar.

The line goes to the ``"curvecast"`` logger at INFO, which reaches the console of a plain script (see
:mod:`curvecast.failsafe`)::

    curvecast step 300/1000: loss 2.41 (best 2.38) -> 2.05 at step 1000 (80%: 1.98..2.12); target 2.1: P=0.71

A run another callback stops before its planned end (Lightning's ``EarlyStopping``) ends with a line saying so, and
no forecast to the step it will not reach (:func:`~curvecast.render.text.ended_line`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from curvecast.forecasting.report import Report
from curvecast.integrations.actuator import Actuator
from curvecast.render.text import ended_line, forecast_line

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
        if report.ended_by is not None:  # stopped short of the horizon by another callback: the run's last line
            self._say(ended_line(report))
            return
        forecast = report.forecast
        if forecast is None or not forecast.ok:
            return
        self._say(self.describe(report))
        # Without a progress bar there is nothing to show it in, and a `log` call costs the training thread about a
        # millisecond (a tensor made of the float, Lightning's result collection updated).
        if self.progress_bar and pl_module is not None and getattr(trainer, "progress_bar_callback", True) is not None:
            # A hook where Lightning forbids logging (after validation) raises: the bar then keeps its last value.
            with contextlib.suppress(Exception):
                pl_module.log(PROGRESS_BAR_NAME, float(forecast.final), prog_bar=True, logger=False)

    def _say(self, line: str) -> None:
        self.lines = [*self.lines[-99:], line]
        log.info(line)

    def describe(self, report: Report) -> str:
        """The one line for ``report`` (which carries a forecast)."""
        return forecast_line(report, self.interval)
