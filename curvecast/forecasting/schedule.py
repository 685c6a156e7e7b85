"""LR-schedule features for the schedule-aware laws: the forward area S1 and the Multi-Power-Law annealing basis.

The schedule is normalised by its peak (u = lr / max lr), so the laws' constants do not depend on the optimizer's LR
units. Multi-Power Law (Luo et al. 2025): ``L(t) = L0 + A * (S1(t) + S_W)^-alpha - B * LD(t)`` with
``LD(t) = sum_k (u_{k-1} - u_k) * G(u_k^-gamma * S_k(t))``, ``G(x) = 1 - (C x + 1)^-beta``, ``S_k(t)`` the LR area from
step k to t. With the shape constants (C, beta, gamma) fixed, LD is a fixed column and the law is linear in L0, A, B.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LRSchedule", "MPL_BETA", "MPL_C", "MPL_GAMMA"]

# MPL shape constants, nearly size-invariant in Luo et al. 2025 (C ~ 2.0-2.1, beta ~ 0.58-0.60, gamma ~ 0.63-0.66 at a
# peak LR of 3e-4). C is rescaled to a peak-normalised schedule: C' = C * lr_peak^(1 - gamma) = 2 * (3e-4)^0.35.
MPL_C = 0.117
MPL_BETA = 0.6
MPL_GAMMA = 0.65
# The decay part of the schedule is summarised in at most this many chunks: LD costs O(points * chunks).
_MAX_CHUNKS = 512


class LRSchedule:
    """A planned LR schedule for steps 0..horizon (``lrs[t]`` is the LR used at step t)."""

    def __init__(self, lrs: np.ndarray) -> None:
        lrs = np.asarray(lrs, dtype=np.float64)
        self.peak_lr = float(lrs.max())
        u = lrs / self.peak_lr
        self.u = u
        self.horizon = len(u) - 1
        self.cum = np.cumsum(u)  # cum[t] = area of steps 0..t, in steps at the peak LR
        self.peak_step = int(np.argmax(u))
        # Warmup area as the offset S_W keeps S1 + S_W positive from step 0 on.
        self.s_w = float(self.cum[self.peak_step]) + 1.0
        self._chunk_decay(u)

    def _chunk_decay(self, u: np.ndarray) -> None:
        """Summarise the LR changes after the peak as chunks (signed drop, step, LR after the drop)."""
        p = self.peak_step
        d = u[p:-1] - u[p + 1 :]  # d[i] = drop from step p+i to p+i+1
        if d.size == 0 or not np.any(d != 0.0):
            self.drop = np.zeros(0)
            self.drop_step = np.zeros(0)
            self.drop_lr = np.zeros(0)
            return
        nz = np.flatnonzero(d != 0.0)
        d, idx = d[nz], nz + (p + 1)
        n_chunks = min(_MAX_CHUNKS, d.size)
        edges = np.linspace(0, d.size, n_chunks + 1).round().astype(np.int64)
        starts = edges[:-1][np.diff(edges) > 0]
        drop = np.add.reduceat(d, starts)
        mag = np.add.reduceat(np.abs(d), starts)
        pos = np.add.reduceat(np.abs(d) * idx, starts) / np.maximum(mag, 1e-300)
        keep = mag > 0
        self.drop = drop[keep]
        self.drop_step = pos[keep]
        self.drop_lr = u[np.clip(np.round(self.drop_step).astype(np.int64), 0, len(u) - 1)]

    def area(self, steps: np.ndarray) -> np.ndarray:
        """LR area of steps 0..t (peak-LR steps), interpolated for fractional steps."""
        t = np.clip(np.asarray(steps, dtype=np.float64), 0.0, self.horizon)
        # Direct indexing: np.interp would need an arange as long as the schedule on every call.
        i = np.minimum(np.floor(t).astype(np.int64), max(self.horizon - 1, 0))
        j = np.minimum(i + 1, self.horizon)
        return self.cum[i] + (t - i) * (self.cum[j] - self.cum[i])

    def s1(self, steps: np.ndarray) -> np.ndarray:
        """Forward area S1(t) + S_W, always positive."""
        return self.area(steps) + self.s_w

    def anneal(self, steps: np.ndarray, shape: tuple[float, float, float] = (MPL_C, MPL_BETA, MPL_GAMMA)) -> np.ndarray:
        """The MPL annealing basis LD(t) (0 before the first drop; about the total drop once it has saturated).

        ``shape``: the constants (C, beta, gamma) of the response ``G``.
        """
        c, beta, gamma = shape
        t = np.asarray(steps, dtype=np.float64)
        if self.drop.size == 0:
            return np.zeros(t.shape)
        # S_k(t): area from the drop's step to t; zero (no effect yet) before the drop.
        s_k = self.area(t)[:, None] - self.area(self.drop_step - 1.0)[None, :]
        s_k = np.where(t[:, None] >= self.drop_step[None, :], np.maximum(s_k, 0.0), 0.0)
        x = np.maximum(self.drop_lr, 1e-6)[None, :] ** -gamma * s_k
        g = 1.0 - (c * x + 1.0) ** -beta
        return g @ self.drop

    def total_drop_after(self, step: float) -> float:
        """Net normalised LR drop planned after ``step`` (0 when the LR stays flat or rises)."""
        later = self.drop_step > step
        return float(max(self.drop[later].sum(), 0.0))
