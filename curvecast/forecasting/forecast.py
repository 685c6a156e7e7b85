"""Forecast: the frozen result of one fit, with a point curve and a predictive distribution at the horizon.

The forecaster fits a positive, falling quantity ``y = sign * metric - base`` (``metric_map.py``: the loss itself, an
error rate ``1 - accuracy``, a loss shifted past its estimated floor). The distribution at the horizon is a normal in
log ``y`` centred on the point forecast with scale ``log_scale``, narrower on the worse side where ``worse_scale``
says so (a metric whose planned LR does not rise again ends no worse than its recent worst level, noise included);
``interval``, ``prob_below``, ``prob_beyond``, ``predict`` and ``step_to_reach`` all read it and answer in the
metric's own units (clipped to its bounds), so they always agree. A forecast that could not be made has
``ok=False``, a ``reason``, and answers every question with nan or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

from curvecast.forecasting.fit_diagnostics import FitDiagnostics
from curvecast.forecasting.metric_map import MetricMap
from curvecast.forecasting.real_values import check_value, real_array

__all__ = ["Z80", "Forecast"]

# The normal quantile of 0.9: an 80 % central interval reaches Z80 log-scales either side of the point forecast.
Z80 = 1.2815515655446004

# step_to_reach scans the forecast curve on this many points, then scans the bracketing cell step by step.
_SCAN_POINTS = 1024
# A bracketing cell up to this many steps is scanned step by step; a wider one (a far horizon) is bisected.
_SCAN_CELL = 4096


@dataclass(frozen=True)
class Forecast:
    """A forecast of a metric (usually the training loss) at ``horizon``, made from data up to ``last_step``.

    Attributes:
        ok: whether a forecast was made; when False, ``reason`` says why and every answer is nan or None.
        reason: why no forecast was made, or None.
        horizon: the step forecast to.
        last_step: the last observed step.
        final: point forecast of the smoothed metric at ``horizon`` (nan when not ok).
        log_scale: standard deviation of log(y at horizon) under the predictive distribution, where y is the metric's
            distance to its floor (the metric itself for a positive loss).
        model: short description of the model or ensemble used.
        current: the smoothed metric at ``last_step`` according to the fitted curve.
        curve: the fitted point curve of y (the falling quantity), steps in, y out.
        mapping: how the metric maps to y: its direction (``mapping.mode``), floor and bounds.
        diagnostics: what the fit was made of (:class:`~curvecast.forecasting.fit_diagnostics.FitDiagnostics`: the
            bins, the schedule, the slope, the sources of the interval, the weighted members), or None when the fit
            stopped before it weighed an interval.
        worse_scale: the log-scale on the worse side of the point forecast (y above ``final``), where it is narrower
            than ``log_scale``: the distribution is then two half-normals in log y with their median at ``final``.
            nan: ``log_scale`` on both sides.

    Example:
        >>> import numpy as np
        >>> from curvecast.forecasting import Forecaster
        >>> steps = np.arange(1, 401)
        >>> forecast = Forecaster().fit(steps, 2.0 + 3.0 / np.sqrt(steps), horizon=1000)
        >>> forecast.ok, forecast.last_step, round(forecast.final, 2)
        (True, 400, 2.11)
        >>> lo, hi = forecast.interval(0.8)
        >>> bool(lo < forecast.final < hi), round(forecast.prob_below(hi), 2)
        (True, 0.9)
        >>> [round(float(x), 2) for x in forecast.predict([400, 1000])]
        [2.15, 2.11]
        >>> forecast.diagnostics.schedule is None, sorted(forecast.diagnostics.scale_parts)
        (True, ['anneal', 'early', 'floor', 'held', 'held_prior', 'noise', 'spread'])
        >>> Forecast.failed("no points", horizon=1000, last_step=0).interval(0.8)
        (nan, nan)
    """

    ok: bool
    reason: str | None
    horizon: int
    last_step: int
    final: float = math.nan
    log_scale: float = math.nan
    model: str = "none"
    current: float = math.nan
    curve: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)
    mapping: MetricMap = field(default_factory=MetricMap)
    diagnostics: FitDiagnostics | None = field(default=None, repr=False, compare=False)
    worse_scale: float = math.nan

    @property
    def mode(self) -> str:
        """``"min"`` when the metric improves downwards (a loss), ``"max"`` when upwards (accuracy, reward)."""
        return self.mapping.mode

    def _y(self, value: float) -> float:
        return float(self.mapping.to_y(value))

    @classmethod
    def failed(cls, reason: str, horizon: int, last_step: int, mapping: MetricMap | None = None) -> Forecast:
        """A forecast that could not be made, saying why."""
        mapping = MetricMap() if mapping is None else mapping
        return cls(ok=False, reason=reason, horizon=int(horizon), last_step=int(last_step), mapping=mapping)

    def interval(self, p: float = 0.8) -> tuple[float, float]:
        """Central interval holding the metric at the horizon with probability ``p``."""
        p = check_value(p, "p")
        if not 0.0 < p < 1.0:
            raise ValueError(f"`p` must lie in (0, 1), but got {p}")
        if not self.ok:
            return (math.nan, math.nan)
        z = float(ndtri(0.5 + p / 2.0))
        y = self._y(self.final)
        ends = self.mapping.to_metric(np.array([y * math.exp(-z * self.log_scale), y * math.exp(z * self.upper_scale)]))
        return (float(ends.min()), float(ends.max()))

    @property
    def upper_scale(self) -> float:
        """The log-scale above the point forecast in y (the worse side): ``worse_scale`` where set, else
        ``log_scale``."""
        return self.log_scale if math.isnan(self.worse_scale) else self.worse_scale

    def prob_below(self, target: float) -> float:
        """Probability that the metric at the horizon ends below ``target`` (in the metric's units, either mode)."""
        beyond = self.prob_beyond(target)
        return beyond if self.mapping.mode == "min" or math.isnan(beyond) else 1.0 - beyond

    def prob_beyond(self, target: float) -> float:
        """Probability that the metric at the horizon ends better than ``target``: below it for ``mode="min"``,
        above it for ``mode="max"``."""
        target = check_value(target, "target")
        if not self.ok or not math.isfinite(target):
            return math.nan
        ty = self._y(target)
        if ty <= 0.0:  # at or past the floor: no forecast gets there
            return 0.0
        y = self._y(self.final)
        scale = self.log_scale if ty < y else self.upper_scale  # the half on the target's side of the median
        if scale <= 0.0:
            return float(y < ty)
        return float(ndtr((math.log(ty) - math.log(y)) / scale))

    def predict(self, at_steps: np.ndarray | list[float] | float) -> np.ndarray:
        """Point forecasts of the smoothed metric at ``at_steps`` (steps past the horizon read the horizon's value)."""
        at = np.atleast_1d(real_array(at_steps, "at_steps"))
        out = np.full(at.shape, np.nan)
        if not self.ok or self.curve is None:
            return out
        known = np.isfinite(at)  # no step, no forecast: a NaN step reads NaN (the curves index by whole steps)
        out[known] = self.mapping.to_metric(self.curve(np.minimum(at[known], self.horizon)))
        return out

    def step_to_reach(self, target: float) -> int | None:
        """First step at or after ``last_step`` where the point forecast reaches ``target``, else None.

        Reaching means at or below ``target`` for ``mode="min"``, at or above it for ``mode="max"``: a target the
        current smoothed value already reaches is reached at ``last_step``; one the curve does not get to by the
        horizon is out of reach (None).
        """
        target = check_value(target, "target")
        if not self.ok or self.curve is None or not math.isfinite(target):
            return None
        start = self.last_step
        if self.mapping.sign * self.current <= self.mapping.sign * target:
            return start
        target = self._y(target)
        grid = np.unique(np.linspace(start, self.horizon, min(_SCAN_POINTS, self.horizon - start + 1)).round())
        hit = np.flatnonzero(self.curve(grid) <= target)
        if hit.size == 0:
            return None
        i = int(hit[0])
        if i == 0:
            return int(grid[0])
        lo, hi = float(grid[i - 1]), float(grid[i])
        if hi - lo <= _SCAN_CELL:
            cell = np.arange(lo, hi + 1.0)
            j = np.flatnonzero(self.curve(cell) <= target)
            return int(cell[j[0]]) if j.size else int(hi)
        while hi - lo > 1.0:  # a wide cell (a far horizon): bisect, O(log cell) evaluations
            mid = math.floor((lo + hi) / 2.0)
            if self.curve(np.array([mid]))[0] <= target:
                hi = mid
            else:
                lo = mid
        return int(hi)
