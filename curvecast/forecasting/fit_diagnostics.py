"""FitDiagnostics: what one fit of the Forecaster was made of, carried by the Forecast it returns.

The forecaster keeps nothing of a fit; a test, a calibration script or a curious user reads the bins fitted, the
schedule, the slope behind the annealing prior, the sources of the interval and the weighted members here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from curvecast.forecasting.preprocess import Binned
from curvecast.forecasting.schedule import LRSchedule

__all__ = ["FitDiagnostics", "Member"]


class Member(Protocol):
    """One member of the ensemble: a fitted family or the reference runs' shape, steps in, y out."""

    @property
    def name(self) -> str: ...

    @property
    def anneal_sd(self) -> float: ...

    def __call__(self, t: np.ndarray) -> np.ndarray: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class FitDiagnostics:
    """What one fit was made of (``Forecast.diagnostics``), in the units of y, the falling quantity fitted.

    Attributes:
        binned: the bins fitted: the observed curve binned, past the early transient, as y.
        schedule: the planned LR schedule the fit used, or None when none was usable.
        slope: the log-log slope of y behind the annealing prior, projected to the start of the coming LR decay.
        scale_parts: the independent sources of the predictive log-scale by name (``uncertainty.log_scale_parts``),
            before the calibrated interval scale multiplies their sum.
        members: the ensemble as ``(weight, member)`` pairs, weights summing to 1, in the order they were fitted.
        interval_scale: the calibrated multiplier of the sum of ``scale_parts`` (``calibration.py``).
        noise_floor: the least log-scale the interval may have: the noise of one logged point of the series, which
            the value logged at the horizon carries whatever the fit knows.
        leverage: the reach over the span trained (``uncertainty.leverage`` from ``FitContext.origin``): an early
            forecast with a planned schedule, from ``calibration.EARLY_FROM`` on, has its own interval sizing.
        worse_bound: the largest log-scale the worse side of the interval may have (its 80 % end at the curve's recent
            worst level, plus one point's scatter: ``sized_forecast._worse_bound``); inf where none holds.
    """

    binned: Binned
    schedule: LRSchedule | None
    slope: float
    scale_parts: dict[str, float]
    members: tuple[tuple[float, Member], ...]
    interval_scale: float = 1.0
    noise_floor: float = 0.0
    leverage: float = 0.0
    worse_bound: float = float("inf")
