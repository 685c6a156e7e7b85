"""Completed trials' curves: kept small in a trial's user attributes, read back as references by later trials.

A trial that runs to its end stores its monitored curve (at most ``MAX_CURVE_POINTS`` points, and its planned LR at as
many steps) in the user attribute ``CURVE_ATTR``. Optuna keeps user attributes in the study's storage, so the curves
reach later trials in other processes too. A later trial reads them two ways: as ``Reference`` runs that join its
forecast's ensemble, and through :func:`chance_to_beat`, the record of how much finished trials still improved from
the same point of their runs.

Pure numpy and scipy: nothing here knows Lightning or Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from curvecast.forecasting.references import Reference

__all__ = ["CURVE_ATTR", "MAX_CURVE_POINTS", "TrialCurve", "chance_to_beat", "subsample"]

CURVE_ATTR = "curvecast_curve"  # trial user attribute: the monitored curve of a trial that ran to its end
MAX_CURVE_POINTS = 200  # a user attribute is a JSON blob in the study's storage: 200 points cost about 8 kB
# A reference's LRs are rebuilt one per step (8 bytes each): a longer run's reference goes without them.
MAX_REFERENCE_LR_STEPS = 1_000_000


def subsample(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` points, evenly spread, the first and the last always among them."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@dataclass(frozen=True)
class TrialCurve:
    """The monitored curve of a finished trial: its steps and values, the step it was planned to end at, its LRs.

    Attributes:
        steps: increasing steps of the values.
        values: the monitored metric at ``steps``.
        horizon: the step the trial was planned to end at (its ``max_steps``).
        lr_steps, lrs: the planned LR at some steps (linear in between), or None when the schedule was unknown.
    """

    steps: np.ndarray
    values: np.ndarray
    horizon: int
    lr_steps: np.ndarray | None = None
    lrs: np.ndarray | None = None

    @classmethod
    def record(cls, steps: Sequence[int], values: Sequence[float], horizon: int, lr_of_step: Any = None) -> TrialCurve:
        """The curve subsampled to ``MAX_CURVE_POINTS``; ``lr_of_step(step)`` gives the planned LR, if known."""
        keep = subsample(len(steps))
        s = np.asarray(steps, dtype=np.int64)[keep]
        v = np.asarray(values, dtype=np.float64)[keep]
        lr_steps = lrs = None
        if lr_of_step is not None:
            lr_steps = np.unique(np.linspace(0, horizon, min(MAX_CURVE_POINTS, horizon + 1)).round().astype(np.int64))
            lrs = np.array([float(lr_of_step(int(k))) for k in lr_steps])
        return cls(s, v, int(horizon), lr_steps, lrs)

    def to_attr(self, monitor: str) -> dict[str, Any]:
        """A JSON-safe dict for ``trial.set_user_attr`` (non-finite values become None)."""
        attr: dict[str, Any] = {
            "monitor": monitor,
            "horizon": self.horizon,
            "steps": [int(s) for s in self.steps],
            "values": [float(v) if math.isfinite(v) else None for v in self.values],
        }
        if self.lrs is not None:
            attr["lr_steps"] = [int(s) for s in self.lr_steps]
            attr["lrs"] = [float(x) for x in self.lrs]
        return attr

    @classmethod
    def from_attr(cls, attr: Any, monitor: str) -> TrialCurve | None:
        """The curve stored by :meth:`to_attr` for ``monitor``, or None when there is none or it is malformed."""
        if not isinstance(attr, dict) or attr.get("monitor") != monitor:
            return None
        try:
            steps = np.asarray(attr["steps"], dtype=np.float64)
            values = np.asarray([math.nan if v is None else v for v in attr["values"]], dtype=np.float64)
            horizon = int(attr["horizon"])
            lr_steps = lrs = None
            if "lrs" in attr:
                lr_steps = np.asarray(attr["lr_steps"], dtype=np.float64)
                lrs = np.asarray(attr["lrs"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: a horizon of inf, which SQLite keeps
            return None
        if horizon <= 0:
            return None
        if steps.ndim != 1 or len(steps) != len(values) or len(steps) < 2 or np.any(np.diff(steps) <= 0):
            return None
        if lrs is not None and (len(lrs) != len(lr_steps) or len(lrs) < 2 or not np.all(np.isfinite(lrs))):
            lr_steps = lrs = None
        return cls(steps, values, horizon, lr_steps, lrs)

    def reference(self) -> Any:
        """The curve as a forecasting ``Reference`` (with per-step LRs when known and not too long), or None."""
        ok = np.isfinite(self.values)
        lrs = None
        last = int(self.steps[-1])
        if self.lrs is not None and last < MAX_REFERENCE_LR_STEPS:
            lrs = np.interp(np.arange(last + 1), self.lr_steps, self.lrs)
        try:
            return Reference(self.steps[ok], self.values[ok], lrs=lrs)
        except ValueError:  # too few finite points to define a shape
            return None


def chance_to_beat(
    step: int,
    value: float,
    horizon: int,
    curves: Sequence[TrialCurve],
    best: float,
    mode: str = "min",
    min_references: int = 2,
    min_spread: float = 0.1,
) -> float | None:
    """The chance that a trial now at ``value`` (at ``step`` of ``horizon``) ends better than ``best``, or None.

    Each finished trial says how much a run of the study went on to improve from the same fraction of its run to its
    end: a ratio for a positive metric that falls (a loss: runs of different scales improve by similar factors), a
    difference otherwise. Taken as exchangeable draws, n of them give a Student-t predictive distribution of this
    trial's improvement (n - 1 degrees of freedom, scale ``sd * sqrt(1 + 1/n)``): heavy-tailed while few trials are in.
    The spread is at least ``min_spread`` of the mean improvement, since trials of similar settings can agree closely
    and a new setting still differ.

    Args:
        step, value: the trial's latest step and value.
        horizon: the step the trial ends at.
        curves: the finished trials' curves.
        best: the best final value among them.
        mode: ``"min"`` when lower is better, ``"max"`` otherwise.
        min_references: fewest finished trials that reach back to this fraction of their run; fewer give None.
        min_spread: the smallest spread of the improvements, as a fraction of their mean size.
    """
    if horizon <= 0 or not (math.isfinite(value) and math.isfinite(best)):
        return None
    sign = 1.0 if mode == "min" else -1.0
    log = mode == "min" and value > 0 and best > 0 and all(np.nanmin(c.values) > 0 for c in curves)

    def to_x(v: float) -> float:
        return math.log(v) if log else sign * v

    fraction = step / horizon
    gains = []
    for curve in curves:
        ok = np.isfinite(curve.values)
        steps, values = curve.steps[ok], curve.values[ok]
        if len(steps) < 2 or curve.horizon <= 0:
            continue
        at = fraction * curve.horizon
        if at < steps[0] or steps[-1] < 0.9 * curve.horizon:  # no value this early, or it did not reach its end
            continue
        gains.append(to_x(float(values[-1])) - to_x(float(np.interp(at, steps, values))))
    n = len(gains)
    if n < max(min_references, 2):
        return None
    mean = float(np.mean(gains))
    spread = max(float(np.std(gains, ddof=1)), min_spread * abs(mean), 1e-12)
    z = (to_x(best) - (to_x(value) + mean)) / (spread * math.sqrt(1.0 + 1.0 / n))
    return float(student_t.cdf(z, df=n - 1))
