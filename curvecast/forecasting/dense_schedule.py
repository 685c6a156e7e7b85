"""DenseSchedule: the storage of an LRSchedule that holds one LR per step (see :mod:`curvecast.forecasting.schedule`).

A form answers the per-step questions and the areas; :class:`~curvecast.forecasting.schedule.LRSchedule` wraps it and
adds the laws' features on top. It knows nothing of LRSchedule: the schedule's constants reach it as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

__all__ = ["DenseSchedule"]


class DenseSchedule:
    """One planned LR per step ``0..horizon``, with O(1) answers from per-step prefix arrays built once in O(N).

    Args:
        lrs: the planned LR of every step, finite and non-negative.
        rise_rtol: an increase by more than this fraction from one step to the next counts as a rise.
    """

    dense = True

    def __init__(self, lrs: Sequence[float] | np.ndarray, rise_rtol: float = 1e-3) -> None:
        if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__len__"):
            raise TypeError(
                f"Expected `lrs` to be a sequence of floats (LR at steps 0..N), but got {type(lrs).__name__}"
            )
        try:
            values = np.asarray(lrs, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"Expected `lrs` to hold numbers, but got {err}") from None
        if values.ndim != 1:
            raise ValueError(f"Expected `lrs` to be 1-D (one LR per step), but got shape {values.shape}")
        if not values.size:
            raise ValueError("`lrs` must hold the LR of at least one step, but it is empty")
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"`lrs` must be finite and non-negative, but lrs[{i}] = {values[i]}")
        values.flags.writeable = False  # shared read-only between the training thread and the forecast worker
        self.lrs = values
        self.horizon = len(values) - 1
        self.peak_lr = float(values.max())
        # O(N) vectorised, once: the last step <= i where the LR rose, the highest LR up to i, the lowest from i on.
        rose = np.zeros(len(values), dtype=bool)
        rose[1:] = values[1:] > values[:-1] * (1.0 + rise_rtol)
        self._last_rise = np.maximum.accumulate(np.where(rose, np.arange(len(values)), -1))
        self._peak = np.maximum.accumulate(values)
        self._min_ahead = np.minimum.accumulate(values[::-1])[::-1]

    def __len__(self) -> int:
        return len(self.lrs)

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(len(self.lrs)), self.lrs

    def u_at(self, steps: np.ndarray) -> np.ndarray:
        return self.u[np.clip(np.asarray(steps, dtype=np.int64), 0, self.horizon)]

    def response(self, power: float) -> DenseSchedule:
        return DenseSchedule(self.u**power)

    def _clip(self, step: int) -> int:
        return min(max(int(step), 0), self.horizon)

    # -- O(1) questions about a step ----------------------------------------------------------------------------------

    def lr(self, step: int) -> float:
        return float(self.lrs[self._clip(step)])

    def rose_between(self, after: int, upto: int) -> bool:
        if after >= self.horizon:
            return False
        return bool(self._last_rise[self._clip(upto)] > after)

    def drop_ahead(self, step: int, factor: float) -> bool:
        if step > self.horizon:
            return False
        i = self._clip(step)
        now = float(self.lrs[i])
        return now > 0.0 and float(self._min_ahead[i]) <= factor * now

    def step_drop_ahead(self, step: int, factor: float, least: float) -> bool:
        if step >= self.horizon:
            return False
        i = self._clip(step)
        now = float(self.lrs[i])
        before, after = self.lrs[i:-1], self.lrs[i + 1 :]
        return now > 0.0 and bool(np.any((after <= factor * before) & (before >= least * now) & (before > 0.0)))

    def fraction_of_peak(self, step: int) -> float:
        i = self._clip(step)
        peak = float(self._peak[i])
        return float(self.lrs[i]) / peak if peak > 0 else 1.0

    # -- what the laws' features are built on (on first use) ----------------------------------------------------------

    @cached_property
    def u(self) -> np.ndarray:
        return self.lrs / self.peak_lr if self.peak_lr > 0 else np.zeros_like(self.lrs)

    @cached_property
    def cum(self) -> np.ndarray:
        return np.cumsum(self.u)

    @cached_property
    def peak_step(self) -> int:
        return int(np.argmax(self.lrs))  # O(N): once, not at every s1() call

    @property
    def s_w(self) -> float:
        return float(self.cum[self.peak_step]) + 1.0

    def decay_chunks(self, max_chunks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LR changes after the peak in at most ``max_chunks`` chunks: (signed drop, step, LR after the drop)."""
        u, p = self.u, self.peak_step
        d = u[p:-1] - u[p + 1 :]  # d[i] = drop from step p+i to p+i+1
        if d.size == 0 or not np.any(d != 0.0):
            return np.zeros(0), np.zeros(0), np.zeros(0)
        nz = np.flatnonzero(d != 0.0)
        d, idx = d[nz], nz + (p + 1)
        n_chunks = min(max_chunks, d.size)
        edges = np.linspace(0, d.size, n_chunks + 1).round().astype(np.int64)
        starts = edges[:-1][np.diff(edges) > 0]
        drop = np.add.reduceat(d, starts)
        mag = np.add.reduceat(np.abs(d), starts)
        pos = np.add.reduceat(np.abs(d) * idx, starts) / np.maximum(mag, 1e-300)
        keep = mag > 0
        drop_step = pos[keep]
        drop_lr = u[np.clip(np.round(drop_step).astype(np.int64), 0, len(u) - 1)]
        return drop[keep], drop_step, drop_lr

    def area(self, steps: np.ndarray) -> np.ndarray:
        t = np.clip(np.asarray(steps, dtype=np.float64), 0.0, self.horizon)
        # Direct indexing: np.interp would need an arange as long as the schedule on every call.
        i = np.minimum(np.floor(t).astype(np.int64), max(self.horizon - 1, 0))
        j = np.minimum(i + 1, self.horizon)
        return self.cum[i] + (t - i) * (self.cum[j] - self.cum[i])
