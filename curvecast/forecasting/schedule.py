"""LRSchedule: the one description of a planned learning-rate schedule, for every part that asks about it.

Two kinds of questions, both answered here so the parts never disagree at a boundary:

- O(1) questions about a step, for the live detectors and the stop rule: did the LR rise (warmup, a warm restart),
  does a drop lie ahead, how far below its peak is it (:meth:`LRSchedule.rose_between`, :meth:`drop_ahead`,
  :meth:`fraction_of_peak`);
- features of the schedule-aware laws, for the forecaster: the forward area S1 and the Multi-Power-Law annealing
  basis (:meth:`s1`, :meth:`anneal`, :meth:`total_drop_after`), built on first use.

Two forms, one interface. A schedule of up to ``MAX_DENSE_STEPS`` steps is usually dense: one LR per step
(``LRSchedule(lrs)``). A longer one is described by knots (``LRSchedule.from_knots``): integer steps and their LRs,
**linear between knots** at the integer steps in between (a jump from one step to the next is two knots one step
apart), so memory is bounded by the number of knots and each question costs O(log knots). Areas are the exact sums of
that interpolated LR over integer steps, so a knot at every step answers as the dense form does, up to rounding.
:func:`sample_knots` builds knots from any function of the step by adaptive bisection.

The schedule is normalised by its peak (u = lr / max lr), so the laws' constants do not depend on the optimizer's LR
units. Multi-Power Law (Luo et al. 2025): ``L(t) = L0 + A * (S1(t) + S_W)^-alpha - B * LD(t)`` with
``LD(t) = sum_k (u_{k-1} - u_k) * G(u_k^-gamma * S_k(t))``, ``G(x) = 1 - (C x + 1)^-beta``, ``S_k(t)`` the LR area from
step k to t. With the shape constants (C, beta, gamma) fixed, LD is a fixed column and the law is linear in L0, A, B.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np

from curvecast.forecasting.knots import MAX_SAMPLES, sample_knots

__all__ = ["DROP_FACTOR", "MAX_DENSE_STEPS", "MPL_BETA", "MPL_C", "MPL_GAMMA", "LRSchedule"]

# MPL shape constants, nearly size-invariant in Luo et al. 2025 (C ~ 2.0-2.1, beta ~ 0.58-0.60, gamma ~ 0.63-0.66 at a
# peak LR of 3e-4). C is rescaled to a peak-normalised schedule: C' = C * lr_peak^(1 - gamma) = 2 * (3e-4)^0.35.
MPL_C = 0.117
MPL_BETA = 0.6
MPL_GAMMA = 0.65
DROP_FACTOR = 0.5  # "a drop lies ahead": the LR later falls to at most half its value now
# The decay part of the schedule is summarised in at most this many chunks: LD costs O(points * chunks).
_MAX_CHUNKS = 512
# Longest schedule built dense from a function (LRSchedule.from_function): a dense schedule holds about 50 bytes per
# step (the LRs, three prefix arrays for the O(1) questions, u and its running sum), 50 MB here; longer ones are knots.
MAX_DENSE_STEPS = 1_000_000


class LRSchedule:
    """A planned LR schedule for steps ``0..horizon`` (``lrs[t]`` is the LR step t uses).

    ``LRSchedule(lrs)`` is the dense form; :meth:`from_knots` and :meth:`from_function` build the compressed one for
    long runs. Both answer the same questions; only the dense form has the per-step arrays ``lrs``, ``u`` and ``cum``.

    Args:
        lrs: the planned LR of every step, finite and non-negative.
        rise_rtol: an increase by more than this fraction from one step to the next counts as a rise.

    Example:
        >>> s = LRSchedule([0.1, 0.1, 0.01, 0.01, 0.1, 0.1])
        >>> s.rose_between(3, 4), s.rose_between(0, 3), s.drop_ahead(0), s.drop_ahead(4)
        (True, False, True, False)
        >>> round(s.fraction_of_peak(3), 6), s.horizon
        (0.1, 5)
    """

    dense = True  # one LR per step; False for a schedule described by knots

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

    @classmethod
    def from_knots(
        cls, steps: Sequence[int] | np.ndarray, lrs: Sequence[float] | np.ndarray, rise_rtol: float = 1e-3
    ) -> LRSchedule:
        """A schedule given by knots: increasing integer ``steps`` from 0 to the horizon, LRs linear in between.

        Example:
            >>> s = LRSchedule.from_knots([0, 10, 1_000_000_000], [0.0, 1.0, 0.0])  # warmup, then linear decay
            >>> s.horizon, s.peak_step, s.lr(5), s.rose_between(0, 10), s.drop_ahead(10), s.dense
            (1000000000, 10, 0.5, True, True, False)
        """
        from curvecast.forecasting.knot_schedule import KnotSchedule  # it subclasses this one

        return KnotSchedule(steps, lrs, rise_rtol)

    @classmethod
    def from_function(cls, lr_of_steps: Callable[[np.ndarray], np.ndarray], horizon: int) -> LRSchedule:
        """The schedule ``lr_of_steps(steps)`` for steps ``0..horizon``: dense up to ``MAX_DENSE_STEPS`` steps
        (``lr_of_steps(np.arange(horizon + 1))``), else knots from :func:`sample_knots`.

        Raises ValueError when the LR is not finite and non-negative or changes too often to follow in knots.
        """
        if horizon + 1 <= MAX_DENSE_STEPS:
            return cls(lr_of_steps(np.arange(horizon + 1)))
        knots = sample_knots(lr_of_steps, 0, horizon)
        if knots is None:
            raise ValueError(f"the schedule changes too often to follow in {MAX_SAMPLES} knots")
        return cls.from_knots(knots.steps, knots.lrs)

    def __len__(self) -> int:
        return len(self.lrs)

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps and LRs the schedule interpolates linearly (every step of a dense schedule)."""
        return np.arange(len(self.lrs)), self.lrs

    def u_at(self, steps: np.ndarray) -> np.ndarray:
        """The normalised LR ``u`` at integer ``steps`` (clipped to ``0..horizon``)."""
        return self.u[np.clip(np.asarray(steps, dtype=np.int64), 0, self.horizon)]

    def response(self, power: float) -> LRSchedule:
        """The schedule of ``u ** power`` (a response to the LR that is not linear in it), in the same form."""
        return LRSchedule(self.u**power)

    def _clip(self, step: int) -> int:
        return min(max(int(step), 0), self.horizon)

    # -- O(1) questions about a step ----------------------------------------------------------------------------------

    def lr(self, step: int) -> float:
        """The planned LR at ``step`` (the last planned LR past the end of the schedule)."""
        return float(self.lrs[self._clip(step)])

    def rose_between(self, after: int, upto: int) -> bool:
        """Whether the LR rose at some step in ``(after, upto]``."""
        if after >= self.horizon:
            return False
        return bool(self._last_rise[self._clip(upto)] > after)

    def drop_ahead(self, step: int, factor: float = DROP_FACTOR) -> bool:
        """Whether the LR later falls to at most ``factor`` times its (positive) value at ``step``."""
        if step > self.horizon:
            return False
        i = self._clip(step)
        now = float(self.lrs[i])
        return now > 0.0 and float(self._min_ahead[i]) <= factor * now

    def fraction_of_peak(self, step: int) -> float:
        """The LR at ``step`` as a fraction of the highest LR up to ``step`` (1.0 before any LR is set)."""
        i = self._clip(step)
        peak = float(self._peak[i])
        return float(self.lrs[i]) / peak if peak > 0 else 1.0

    # -- features of the schedule-aware laws (built on first use) ------------------------------------------------------

    @cached_property
    def u(self) -> np.ndarray:
        """The schedule normalised by its peak (all zeros for an all-zero schedule)."""
        return self.lrs / self.peak_lr if self.peak_lr > 0 else np.zeros_like(self.lrs)

    @cached_property
    def cum(self) -> np.ndarray:
        """``cum[t]``: the LR area of steps 0..t, in steps at the peak LR."""
        return np.cumsum(self.u)

    @cached_property
    def peak_step(self) -> int:
        return int(np.argmax(self.lrs))  # O(N): once, not at every s1() call

    @property
    def s_w(self) -> float:
        """The warmup area as an offset that keeps S1 + S_W positive from step 0 on."""
        return float(self.cum[self.peak_step]) + 1.0

    @cached_property
    def _decay_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LR changes after the peak as chunks: (signed drop, step, LR after the drop)."""
        u, p = self.u, self.peak_step
        d = u[p:-1] - u[p + 1 :]  # d[i] = drop from step p+i to p+i+1
        if d.size == 0 or not np.any(d != 0.0):
            return np.zeros(0), np.zeros(0), np.zeros(0)
        nz = np.flatnonzero(d != 0.0)
        d, idx = d[nz], nz + (p + 1)
        n_chunks = min(_MAX_CHUNKS, d.size)
        edges = np.linspace(0, d.size, n_chunks + 1).round().astype(np.int64)
        starts = edges[:-1][np.diff(edges) > 0]
        drop = np.add.reduceat(d, starts)
        mag = np.add.reduceat(np.abs(d), starts)
        pos = np.add.reduceat(np.abs(d) * idx, starts) / np.maximum(mag, 1e-300)
        keep = mag > 0
        drop_step = pos[keep]
        drop_lr = u[np.clip(np.round(drop_step).astype(np.int64), 0, len(u) - 1)]
        return drop[keep], drop_step, drop_lr

    @property
    def drop(self) -> np.ndarray:
        return self._decay_chunks[0]

    @property
    def drop_step(self) -> np.ndarray:
        return self._decay_chunks[1]

    @property
    def drop_lr(self) -> np.ndarray:
        return self._decay_chunks[2]

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
        return self.anneal_shapes(steps, [shape])[0]

    def anneal_shapes(self, steps: np.ndarray, shapes: list[tuple[float, float, float]]) -> np.ndarray:
        """``anneal(steps, shape)`` for each of ``shapes``, shape (len(shapes), len(steps)): the areas since each drop
        are computed once for all of them."""
        t = np.asarray(steps, dtype=np.float64)
        # Only the drops at or before the last step asked for count (a later one has no effect yet): fitting an
        # observed window half-way through a decay skips the half still to come.
        k = int(np.searchsorted(self.drop_step, t.max(), side="right")) if t.size else 0
        if k == 0:
            return np.zeros((len(shapes), *t.shape))
        drop, drop_step = self.drop[:k], self.drop_step[:k]
        # S_k(t): area from the drop's step to t; zero (no effect yet) before the drop.
        s_k = self.area(t)[:, None] - self.area(drop_step - 1.0)[None, :]
        s_k = np.where(t[:, None] >= drop_step[None, :], np.maximum(s_k, 0.0), 0.0)
        lr = np.maximum(self.drop_lr[:k], 1e-6)[None, :]
        out = np.empty((len(shapes), *t.shape))
        for i, (c, beta, gamma) in enumerate(shapes):
            g = 1.0 - (c * (lr**-gamma * s_k) + 1.0) ** -beta
            out[i] = g @ drop
        return out

    def total_drop_after(self, step: float) -> float:
        """Net normalised LR drop planned after ``step`` (0 when the LR stays flat or rises)."""
        later = self.drop_step > step
        return float(max(self.drop[later].sum(), 0.0))
