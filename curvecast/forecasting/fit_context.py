"""FitContext: what the steps of one forecast share (the window fitted, the horizon, the schedule, the prior's level and
slope, the hold-back cut), passed to each of them explicitly so that the forecaster keeps nothing of a fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curvecast.forecasting.family_fit import is_noisy
from curvecast.forecasting.preprocess import Binned
from curvecast.forecasting.schedule import LRSchedule

__all__ = ["FitContext", "log_slope"]


@dataclass(frozen=True)
class FitContext:
    """What the steps of one fit share, passed to each of them explicitly (the forecaster keeps nothing of a fit)."""

    data: Binned  # the bins fitted (past the early transient), y > 0
    horizon: int
    t_obs: float  # the last observed step
    schedule: LRSchedule | None  # the planned schedule, or None (never a guessed one)
    level: float  # the recent level of y: the unit of the annealing prior
    slope: float  # the log-log slope of y projected to the coming decay: the size of the annealing prior
    cut: float  # the bins after this step are held back
    stalled: bool  # the latest half of the window shows no fall clear of the noise (``flat.stall_window``)
    mode: str = "min"  # the metric's direction: the interval's calibration differs for a loss and a score
    scatter: float = 0.0  # the scatter of one logged point (``preprocess.point_scatter``): the interval's least width
    start: float = 0.0  # the first logged step (before the transient is skipped): the span the prefix covers
    origin: float = 0.0  # the step training is counted from: ``start``, or one logging interval if the log starts later

    @property
    def t_last(self) -> float:
        return float(self.data.steps[-1])

    @property
    def known(self) -> bool:
        """Whether the LR schedule was planned (the interval's calibration differs)."""
        return self.schedule is not None

    @property
    def noisy(self) -> bool:
        """Whether the schedule is planned and the logged points scatter by more than ``NOISY_FROM``: the interval
        of such a curve is sized apart (``calibration.HELD_GROWTH_NOISY``)."""
        return self.known and is_noisy(self.data)


def log_slope(data: Binned) -> float:
    """How fast the metric falls at the end of the window: -d log(value) / d log(step) over its later half."""
    t, y, c = data.steps, data.values, data.counts
    ok = (t > 0) & (y > 0)
    if ok.sum() < 3:
        return 0.0
    lt, ly, w = np.log(t[ok]), np.log(y[ok]), c[ok]
    late = lt >= 0.5 * (lt[0] + lt[-1])
    if late.sum() < 3:
        late = np.ones_like(lt, dtype=bool)
    lt, ly, w = lt[late], ly[late], w[late]
    x = lt - np.average(lt, weights=w)
    den = float(np.sum(w * x * x))
    return max(-float(np.sum(w * x * ly)) / den, 0.0) if den > 0 else 0.0
