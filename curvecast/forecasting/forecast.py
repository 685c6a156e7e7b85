"""Forecast: the frozen result of one fit, with a point curve and a predictive distribution at the horizon.

The distribution at the horizon is a normal in log space (the metric is a positive loss) centred on ``final`` with
scale ``log_scale``; ``interval`` and ``prob_below`` both read that one distribution, so they always agree. A forecast
that could not be made has ``ok=False``, a ``reason``, and answers every question with nan or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["Forecast"]

# step_to_reach scans the forecast curve on this many points, then scans the bracketing cell step by step.
_SCAN_POINTS = 1024


@dataclass(frozen=True)
class Forecast:
    """A forecast of a metric (usually the training loss) at ``horizon``, made from data up to ``last_step``.

    Attributes:
        ok: whether a forecast was made; when False, ``reason`` says why and every answer is nan or None.
        reason: why no forecast was made, or None.
        horizon: the step forecast to.
        last_step: the last observed step.
        final: point forecast of the smoothed metric at ``horizon`` (nan when not ok).
        log_scale: standard deviation of log(metric at horizon) under the predictive distribution.
        model: short description of the model or ensemble used.
        current: the smoothed metric at ``last_step`` according to the fitted curve.
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

    @classmethod
    def failed(cls, reason: str, horizon: int, last_step: int) -> Forecast:
        """A forecast that could not be made, saying why."""
        return cls(ok=False, reason=reason, horizon=int(horizon), last_step=int(last_step))

    def interval(self, p: float = 0.8) -> tuple[float, float]:
        """Central interval holding the metric at the horizon with probability ``p``."""
        if not 0.0 < p < 1.0:
            raise ValueError(f"`p` must lie in (0, 1), but got {p}")
        if not self.ok:
            return (math.nan, math.nan)
        z = float(ndtri(0.5 + p / 2.0))
        return (self.final * math.exp(-z * self.log_scale), self.final * math.exp(z * self.log_scale))

    def prob_below(self, target: float) -> float:
        """Probability that the metric at the horizon ends below ``target``."""
        if not self.ok or not math.isfinite(target):
            return math.nan
        if target <= 0.0:
            return 0.0
        if self.log_scale <= 0.0:
            return float(self.final < target)
        return float(ndtr((math.log(target) - math.log(self.final)) / self.log_scale))

    def predict(self, at_steps: np.ndarray | list[float] | float) -> np.ndarray:
        """Point forecasts of the smoothed metric at ``at_steps`` (steps past the horizon read the horizon's value)."""
        at = np.atleast_1d(np.asarray(at_steps, dtype=np.float64))
        if not self.ok or self.curve is None:
            return np.full(at.shape, np.nan)
        return self.curve(np.minimum(at, self.horizon))

    def step_to_reach(self, target: float) -> int | None:
        """First step at or after ``last_step`` where the point forecast is at or below ``target``, else None.

        The forecaster models a falling metric (a loss): a target above the current smoothed value is reached at
        ``last_step``; one the curve does not fall to by the horizon is out of reach (None).
        """
        if not self.ok or self.curve is None or not math.isfinite(target):
            return None
        start = self.last_step
        if self.current <= target:
            return start
        grid = np.unique(np.linspace(start, self.horizon, min(_SCAN_POINTS, self.horizon - start + 1)).round())
        hit = np.flatnonzero(self.curve(grid) <= target)
        if hit.size == 0:
            return None
        i = int(hit[0])
        if i == 0:
            return int(grid[0])
        cell = np.arange(grid[i - 1], grid[i] + 1.0)
        j = np.flatnonzero(self.curve(cell) <= target)
        return int(cell[j[0]]) if j.size else int(grid[i])
