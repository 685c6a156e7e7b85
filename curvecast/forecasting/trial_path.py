"""TrialPath: one trial's reported curve as the population rule reads it (finite points in step order, its final value
if it ran to its end, its planned LR schedule when known)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curvecast.forecasting.schedule import LRSchedule

__all__ = ["TrialPath"]


@dataclass(frozen=True)
class TrialPath:
    """One trial's reported curve: finite values at increasing steps, and its final value if it ran to its end.

    Attributes:
        steps: increasing steps of the reported values.
        values: the reported metric at ``steps`` (finite).
        final: the value the trial ended at, when it completed; None while running, or when it was stopped early.
        schedule: its planned LR of every step, when known.
    """

    steps: np.ndarray
    values: np.ndarray
    final: float | None = None
    schedule: LRSchedule | None = None

    def log_lr(self, at: np.ndarray) -> float | None:
        """The mean log LR planned at steps ``at`` (None without a schedule, or where the LR is 0)."""
        if self.schedule is None:
            return None
        lrs = np.array([self.schedule.lr(int(min(max(a, 0), self.schedule.horizon))) for a in at])
        if not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
            return None
        return float(np.mean(np.log(lrs)))

    @classmethod
    def of(
        cls,
        steps: Sequence[float],
        values: Sequence[float],
        final: float | None = None,
        schedule: LRSchedule | None = None,
    ) -> TrialPath | None:
        """The path of the finite points of a curve (sorted by step, a repeated step keeping its last value), or
        None when none is left. A non-finite ``final`` reads as None."""
        s = np.asarray(steps, dtype=np.float64).ravel()
        v = np.asarray(values, dtype=np.float64).ravel()
        if s.shape != v.shape:
            return None
        ok = np.isfinite(s) & np.isfinite(v)
        s, v = s[ok], v[ok]
        if not len(s):
            return None
        order = np.argsort(s, kind="stable")
        s, v = s[order], v[order]
        keep = np.append(np.diff(s) > 0, True)  # a step reported twice keeps its last value
        if final is not None and not math.isfinite(final):
            final = None
        return cls(s[keep], v[keep], None if final is None else float(final), schedule)
