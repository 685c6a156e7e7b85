"""SweepJudge: the population rule fed from a sweep's records, shared by the Optuna pruner and the Ray Tune scheduler.

A trial of a sweep carries, beside its reported values, what its live run knows and the sweep engine does not: the
step it is planned to end at, its planned LR schedule, and its latest forecast (made by the ``Curvecast`` bundle, one
fit per report). These travel as small JSON-safe records (Optuna user attributes, or the ``curvecast`` entry of a Ray
Tune result), written by :func:`horizon_record`, :func:`schedule_record` and :func:`forecast_record` and read back,
checked, by :func:`read_horizon`, :func:`read_schedule` and :func:`read_forecast`, which raise ``ValueError`` on a
damaged record (the caller skips it with a warning). The trial's own forecast is the stored one when it is of the
trial's last step, else a fit of its reported curve with its planned schedule, made only when the population rule asks.

Pure numpy and scipy over the brain: nothing here knows Optuna, Ray, torch or Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr

from curvecast.forecasting import Forecaster
from curvecast.forecasting.forecast import Forecast
from curvecast.forecasting.population import PopulationRule, TrialPath, Verdict
from curvecast.forecasting.schedule import LRSchedule

__all__ = [
    "FORECAST_ATTR",
    "HORIZON_ATTR",
    "SCHEDULE_ATTR",
    "SweepJudge",
    "forecast_record",
    "horizon_record",
    "read_forecast",
    "read_horizon",
    "read_schedule",
    "schedule_record",
]

HORIZON_ATTR = "curvecast_horizon"  # the step the trial is planned to end at (its max_steps)
SCHEDULE_ATTR = "curvecast_schedule"  # its planned LR: {"steps": [...], "lrs": [...]}, linear in between
FORECAST_ATTR = "curvecast_forecast"  # its latest forecast at the horizon: {"step", "final", "z", "quantiles"}
MAX_SCHEDULE_KNOTS = 200  # a record is a JSON blob in the study's storage: 200 knots cost about 6 kB
# The forecast travels as quantiles at these standard-normal scores (its 50%, 80% and 95% intervals and its median).
_Z = (-1.959964, -1.281552, -0.674490, 0.0, 0.674490, 1.281552, 1.959964)
_P = (0.95, 0.8, 0.5)


def horizon_record(horizon: int) -> int:
    return int(horizon)


def read_horizon(record: Any) -> int | None:
    """The horizon stored by :func:`horizon_record` (None when absent); ``ValueError`` when damaged."""
    if record is None:
        return None
    if isinstance(record, bool) or not isinstance(record, (int, float)) or not math.isfinite(record) or record <= 0:
        raise ValueError(f"Expected a horizon to be a positive number of steps, but got {record!r}")
    return int(record)


def schedule_record(schedule: LRSchedule) -> dict[str, list[float]]:
    """The planned schedule as at most ``MAX_SCHEDULE_KNOTS`` knots from step 0 to its horizon."""
    steps = np.unique(np.linspace(0, schedule.horizon, min(MAX_SCHEDULE_KNOTS, schedule.horizon + 1)).round())
    return {"steps": [int(s) for s in steps], "lrs": [float(schedule.lr(int(s))) for s in steps]}


def read_schedule(record: Any, horizon: int | None) -> LRSchedule | None:
    """The schedule stored by :func:`schedule_record` (None when absent or of another horizon); ``ValueError`` when
    damaged."""
    if record is None:
        return None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("steps"), list)
        or not isinstance(record.get("lrs"), list)
    ):
        raise ValueError(f"Expected a schedule record of 'steps' and 'lrs' lists, but got {type(record).__name__}")
    try:
        steps = np.asarray(record["steps"], dtype=np.float64)
        lrs = np.asarray(record["lrs"], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Expected a schedule's steps and LRs to be numbers ({error})") from error
    if steps.ndim != 1 or steps.shape != lrs.shape or len(steps) < 2:
        raise ValueError(f"Expected a schedule of at least 2 knots, but got {len(steps)} steps and {len(lrs)} LRs")
    if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(lrs)) and np.all(lrs >= 0)):
        raise ValueError("Expected a schedule's steps and LRs to be finite, LRs not negative")
    if steps[0] != 0 or np.any(np.diff(steps) <= 0):
        raise ValueError("Expected a schedule's steps to increase from 0")
    if horizon is not None and int(steps[-1]) != horizon:
        return None  # planned for another run length: the forecast goes without it
    return LRSchedule.from_knots(steps.astype(np.int64), lrs)


def forecast_record(forecast: Forecast, step: int) -> dict[str, Any] | None:
    """A forecast at its horizon as quantiles (None when it is not usable)."""
    if not forecast.ok or not math.isfinite(forecast.final):
        return None
    lows, highs = zip(*(forecast.interval(p) for p in _P), strict=True)
    quantiles = [*lows, forecast.final, *reversed(highs)]
    if not all(math.isfinite(q) for q in quantiles):
        return None
    return {"step": int(step), "final": float(forecast.final), "quantiles": [float(q) for q in quantiles]}


def read_forecast(record: Any) -> tuple[int, np.ndarray] | None:
    """The step and quantiles stored by :func:`forecast_record` (None when absent); ``ValueError`` when damaged."""
    if record is None:
        return None
    try:
        step = int(record["step"])
        quantiles = np.asarray(record["quantiles"], dtype=np.float64)
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"Expected a forecast record of a step and quantiles ({error!r})") from error
    if quantiles.shape != (len(_Z),) or not np.all(np.isfinite(quantiles)) or np.any(np.diff(quantiles) < 0):
        raise ValueError(f"Expected a forecast's {len(_Z)} quantiles to be finite and in order")
    return step, quantiles


def chance_from_quantiles(quantiles: np.ndarray, target: float, mode: str) -> float:
    """The chance of ending better than ``target`` read from stored quantiles (normal scores interpolated between
    them; beyond the outer ones the tail of the nearest interval's normal)."""
    if np.all(np.diff(quantiles) == 0):
        below = float(target > quantiles[3])
    else:
        z = np.asarray(_Z)
        if target <= quantiles[0] or target >= quantiles[-1]:  # extend the outer interval's spread
            edge = 0 if target <= quantiles[0] else -1
            span = (quantiles[-1] - quantiles[0]) / (z[-1] - z[0])
            score = z[edge] + (target - quantiles[edge]) / span if span > 0 else z[edge]
        else:
            keep = np.append(np.diff(quantiles) > 0, True)
            score = float(np.interp(target, quantiles[keep], z[keep]))
        below = float(ndtr(score))
    return below if mode == "min" else 1.0 - below


@dataclass
class OwnForecast:
    """A trial's own forecast, asked for lazily: the stored one when it is of the last step, else one fit."""

    steps: np.ndarray
    values: np.ndarray
    horizon: int | None
    mode: str
    schedule: LRSchedule | None = None
    stored: tuple[int, np.ndarray] | None = None
    min_points: int = 4
    fits: int = 0
    _forecast: Forecast | None = field(default=None, repr=False)

    def __call__(self, target: float) -> float | None:
        if self.stored is not None and len(self.steps) and self.stored[0] == int(self.steps[-1]):
            return chance_from_quantiles(self.stored[1], target, self.mode)
        if self.horizon is None or not len(self.steps) or self.steps[-1] >= self.horizon:
            return None
        if np.sum(np.isfinite(self.values)) < self.min_points:
            return None
        if self._forecast is None:
            self.fits += 1
            # Within the floor the data supports (no open ceiling): in a study the other trials show how far a curve
            # goes, and an open better side kept trials behind alive (noisy_cls of benchmarks/sweeps.py, a maximised
            # accuracy the pruner knows no bounds of: 32.5 -> 55-60 % of the steps at the same regret).
            self._forecast = Forecaster(min_points=self.min_points, open_ceiling=False).fit(
                self.steps, self.values, horizon=self.horizon, lrs=self.schedule, mode=self.mode
            )
        chance = self._forecast.prob_beyond(target) if self._forecast.ok else math.nan
        return chance if math.isfinite(chance) else None


@dataclass(frozen=True)
class SweepJudge:
    """The population rule with the trial's own forecast: one decision for every sweep engine.

    Args:
        rule: the :class:`~curvecast.forecasting.population.PopulationRule`.
        min_points: fewest reports before the trial's own curve is fitted.
    """

    rule: PopulationRule
    min_points: int = 4

    def judge(
        self,
        steps: Sequence[float],
        values: Sequence[float],
        peers: Sequence[TrialPath],
        horizon: int | None = None,
        schedule: LRSchedule | None = None,
        stored_forecast: tuple[int, np.ndarray] | None = None,
        fit: bool = True,
    ) -> tuple[Verdict, int]:
        """The verdict on a trial from its reports (``values`` at ``steps``, the last one judged) and the fits made
        (none when ``fit`` is False: only a stored forecast is read)."""
        own = TrialPath.of(steps, values, schedule=schedule)
        last = float(values[-1]) if len(values) else None
        forecast = OwnForecast(
            own.steps if own is not None else np.empty(0),
            own.values if own is not None else np.empty(0),
            horizon if fit else None, self.rule.mode, schedule, stored_forecast, self.min_points,
        )  # fmt: skip
        verdict = self.rule.judge(own, peers, horizon, forecast, last)
        return verdict, forecast.fits
