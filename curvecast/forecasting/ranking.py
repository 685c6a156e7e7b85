"""Runs ranked by their forecast final value, each with its chance to end best: ``curvecast analyze DIR`` and the
curvecast tab's comparison of runs both call this, so they rank and give chances the same way.

A run's ending is :class:`FinalDistribution`: the forecast's distribution of the metric at the horizon, a normal in
log ``y`` where ``y = sign * metric - base`` (see :mod:`curvecast.forecasting.forecast` and ``metric_map.py``),
narrower above its median where ``worse_scale`` says so. It is five numbers, so a run's forecast written to an event
file (``final``, ``log_scale``, ``mode``, ``base``, ``worse_scale``) gives the same chances when read back as the
:class:`~curvecast.forecasting.Forecast` it came from. The standard library only:
the TensorBoard plugin imports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FinalDistribution", "chances_to_end_best", "ranking_order"]

_MODES = ("min", "max")


@dataclass(frozen=True)
class FinalDistribution:
    """Where a run ends: the point forecast ``final`` of the metric at the horizon and the spread ``log_scale`` of
    ``log(sign * metric - base)`` around it (``sign`` is -1 for ``mode="max"``), ``worse_scale`` on the worse side
    where it is narrower (nan: ``log_scale`` on both).

    Example:
        >>> ending = FinalDistribution(final=2.0, log_scale=0.1, mode="min", base=0.0)
        >>> round(ending.prob_beyond(2.0), 3), round(ending.prob_beyond(2.5), 3), ending.prob_beyond(-1.0)
        (0.5, 0.987, 0.0)
    """

    final: float
    log_scale: float
    mode: str = "min"
    base: float = 0.0
    worse_scale: float = math.nan

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"Expected `mode` to be one of {_MODES}, but got {self.mode!r}")

    @classmethod
    def of(cls, forecast: Any) -> FinalDistribution | None:
        """The ending of a :class:`~curvecast.forecasting.Forecast`, or None when it has none (``ok=False``)."""
        if not forecast.ok:
            return None
        return cls(
            float(forecast.final),
            float(forecast.log_scale),
            forecast.mapping.mode,
            float(forecast.mapping.base),
            float(forecast.worse_scale),
        )

    def prob_beyond(self, value: float) -> float:
        """The chance the metric ends better than ``value``: below it for ``mode="min"``, above it for ``"max"``
        (what :meth:`Forecast.prob_beyond <curvecast.forecasting.Forecast.prob_beyond>` answers, as it does)."""
        if not (math.isfinite(value) and math.isfinite(self.final)) or math.isnan(self.log_scale):
            return math.nan
        sign = 1.0 if self.mode == "min" else -1.0
        ty = sign * value - self.base
        if ty <= 0.0:  # at or past the floor: no forecast gets there
            return 0.0
        y = sign * self.final - self.base
        if y <= 0.0:
            return 1.0
        scale = self.log_scale if ty < y or math.isnan(self.worse_scale) else self.worse_scale
        if scale <= 0.0:
            return float(y < ty)
        return _normal_cdf((math.log(ty) - math.log(y)) / scale)


def ranking_order(finals: Sequence[float], mode: str, names: Sequence[str]) -> list[int]:
    """The indices of the runs, best forecast first (lowest for ``mode="min"``, highest for ``"max"``); runs with
    no finite forecast last; ties by name."""
    sign = _sign(mode)
    keyed = [(0 if math.isfinite(f) else 1, sign * f if math.isfinite(f) else 0.0, str(n), i)
             for i, (f, n) in enumerate(zip(finals, names, strict=True))]  # fmt: skip
    return [i for *_, i in sorted(keyed)]


def chances_to_end_best(endings: Sequence[FinalDistribution | None], mode: str) -> list[float]:
    """Per run, the chance it ends better than the best point forecast among the other runs (NaN for a run without
    an ending, or with no other run to beat). ``mode`` is the direction all of them are ranked in.

    Example:
        >>> runs = [FinalDistribution(1.0, 0.2), FinalDistribution(1.5, 0.2), None]
        >>> [round(c, 3) for c in chances_to_end_best(runs, "min")[:2]]
        [0.979, 0.021]
    """
    sign = _sign(mode)
    finals = [sign * e.final if e is not None and math.isfinite(e.final) else math.nan for e in endings]
    chances = []
    for i, ending in enumerate(endings):
        others = [f for j, f in enumerate(finals) if j != i and not math.isnan(f)]
        chances.append(ending.prob_beyond(sign * min(others)) if others and not math.isnan(finals[i]) else math.nan)
    return chances


def _sign(mode: str) -> float:
    if mode not in _MODES:
        raise ValueError(f"Expected `mode` to be one of {_MODES}, but got {mode!r}")
    return 1.0 if mode == "min" else -1.0


def _normal_cdf(x: float) -> float:
    """The standard normal's CDF (scipy's ``ndtr``), by ``erfc``: accurate in both tails."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))
