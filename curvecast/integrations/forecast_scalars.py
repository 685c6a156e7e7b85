"""The forecast scalars of a report, by the name they have under ``curvecast/forecast/``: what TensorBoard and the
other loggers get alike.

``final``, ``final_lo`` and ``final_hi`` (the central interval), and with a target ``prob_target`` (the chance the
target is reached at the horizon, from ``report.target_chance``) and ``step_to_target`` (only while the target is
still ahead and forecast to be reached). What is not a finite number is left out.
"""

from __future__ import annotations

import math

from curvecast.forecasting.report import Report

__all__ = ["forecast_scalars"]


def forecast_scalars(report: Report, interval: float) -> dict[str, float]:
    """The forecast scalars of ``report`` (which carries a usable forecast), by name without the prefix.

    Example::

        >>> from curvecast.forecasting import Forecaster
        >>> import numpy as np
        >>> steps = np.arange(200)
        >>> forecast = Forecaster().fit(steps, 2.0 + 3.0 * (steps + 1.0) ** -0.5, horizon=1000)
        >>> sorted(forecast_scalars(Report(step=199, monitor="loss", forecast=forecast), 0.8))
        ['final', 'final_hi', 'final_lo']
    """
    forecast = report.forecast
    lo, hi = forecast.interval(interval)
    scalars = {"final": float(forecast.final), "final_lo": float(lo), "final_hi": float(hi)}
    if report.target is not None:
        scalars["prob_target"] = math.nan if report.target_chance is None else report.target_chance
        # Once the run has reached the target the step it did is history, not a forecast: the scalar stops.
        ahead = report.reached_at is None and report.mode == "min"
        reach = forecast.step_to_reach(report.target) if ahead else None
        if reach is not None:
            scalars["step_to_target"] = float(reach)
    return {name: value for name, value in scalars.items() if math.isfinite(value)}
