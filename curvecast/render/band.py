"""forecast_band: the forecast curve with the band the figure and the curvecast tab both draw around it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["forecast_band"]


def forecast_band(
    forecast: Any, steps: np.ndarray, interval: float = 0.8
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The forecast at ``steps`` (at or after its last observed step) with a band: ``(mean, lo, hi)``, or None.

    The forecast's interval is known at the horizon only; the band narrows linearly in log space from that interval
    to zero width at the last observed step (the figure and TensorBoard's curvecast tab draw the same band). None when
    the interval or the final value is not finite and positive, as the log-space band needs.

    Example:
        >>> from curvecast.forecasting import Forecaster
        >>> t = np.arange(1, 201)
        >>> f = Forecaster().fit(t, 2 + 3 * t**-0.5, horizon=400)
        >>> mean, lo, hi = forecast_band(f, np.array([200, 300, 400]))
        >>> bool(lo[0] == mean[0] == hi[0]) and bool(np.all(lo <= mean)) and bool(np.all(mean <= hi))
        True
    """
    steps = np.asarray(steps, dtype=np.float64)
    mean = np.asarray(forecast.predict(steps), dtype=np.float64)
    lo, hi = forecast.interval(interval)
    final = float(forecast.final)
    last, horizon = float(forecast.last_step), float(forecast.horizon)
    if not all(math.isfinite(x) and x > 0 for x in (lo, hi, final)):
        return None
    frac = np.clip((steps - last) / max(horizon - last, 1.0), 0.0, 1.0)
    return mean, mean * (lo / final) ** frac, mean * (hi / final) ** frac
