"""The better side of a forecast whose floor the data only estimates (a reward, a loss that crosses zero).

``metric_map`` puts such a metric's floor, the best it may reach, one half's improvement past its best value: the point
forecast improves on the best by what the data supports and no more. That floor is also where the interval's better
side ends, and early in a run it ends too soon: the returns of the live RL runs, still climbing at 10 % of the run, end
3-5x past it (none of 16 covered from 10 %). Moving the floor itself out costs the point forecast (their median error
from 25 % went 23 -> 60 %: a law with room extrapolates the climb). So the forecast keeps its point and its worse
side, and its better side ends where a second fit, with the floor out where the recent improvement continued in a
straight line would take the metric by the horizon, ends its own. Learning curves slow down, so the line is the far
end; the second fit costs a second fit, for these metrics alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from curvecast.forecasting.forecast import Z80, Forecast

__all__ = ["ShiftedCurve", "with_better_side"]


@dataclass(frozen=True)
class ShiftedCurve:
    """A forecast curve in y moved by ``shift``: the same curve on a map whose floor sits ``shift`` further out. A
    class, not a closure: a live run's forecasts come back from the forecast process pickled."""

    curve: Callable[[np.ndarray], np.ndarray]
    shift: float

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return self.curve(t) + self.shift


def with_better_side(forecast: Forecast, roomy: Forecast) -> Forecast:
    """``forecast``'s point, curve and worse side, on ``roomy``'s map (the same metric, its floor further out), with
    the 80 % better end the further of the two fits' own; ``forecast`` as it is where either is not made."""
    if not (forecast.ok and roomy.ok) or roomy.mapping.base == forecast.mapping.base:
        return forecast
    lo, hi = forecast.interval(0.8)
    roomy_lo, roomy_hi = roomy.interval(0.8)
    better, worse = (min(lo, roomy_lo), hi) if forecast.mode == "min" else (max(hi, roomy_hi), lo)
    to_y = roomy.mapping.to_y
    y, y_better, y_worse = float(to_y(forecast.final)), float(to_y(better)), float(to_y(worse))
    if not (0.0 < y_better < y <= y_worse and math.isfinite(y_worse)):
        return forecast
    shift = forecast.mapping.base - roomy.mapping.base  # y on the roomy map is y on the first one plus this
    curve = forecast.curve
    return replace(
        forecast,
        mapping=roomy.mapping,
        curve=None if curve is None else ShiftedCurve(curve, shift),
        log_scale=math.log(y / y_better) / Z80,
        worse_scale=math.log(y_worse / y) / Z80,
    )
