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
:func:`sample_knots` builds knots from any function of the step by adaptive bisection. Each form is a storage class
of its own (``dense_schedule.py``, ``knot_schedule.py``) that :class:`LRSchedule` wraps; the forms know nothing of it,
so the imports point one way.

The schedule is normalised by its peak (u = lr / max lr), so the laws' constants do not depend on the optimizer's LR
units. Multi-Power Law (Luo et al. 2025): ``L(t) = L0 + A * (S1(t) + S_W)^-alpha - B * LD(t)`` with
``LD(t) = sum_k (u_{k-1} - u_k) * G(u_k^-gamma * S_k(t))``, ``G(x) = 1 - (C x + 1)^-beta``, ``S_k(t)`` the LR area from
step k to t. With the shape constants (C, beta, gamma) fixed, LD is a fixed column and the law is linear in L0, A, B.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np

from curvecast.forecasting.dense_schedule import DenseSchedule
from curvecast.forecasting.knot_schedule import KnotSchedule
from curvecast.forecasting.knots import MAX_SAMPLES, sample_knots

__all__ = ["DROP_FACTOR", "MAX_CHUNKS", "MAX_DENSE_STEPS", "MPL_BETA", "MPL_C", "MPL_GAMMA", "LRSchedule"]

# MPL shape constants, nearly size-invariant in Luo et al. 2025 (C ~ 2.0-2.1, beta ~ 0.58-0.60, gamma ~ 0.63-0.66 at a
# peak LR of 3e-4). C is rescaled to a peak-normalised schedule: C' = C * lr_peak^(1 - gamma) = 2 * (3e-4)^0.35.
MPL_C = 0.117
MPL_BETA = 0.6
MPL_GAMMA = 0.65
DROP_FACTOR = 0.5  # "a drop lies ahead": the LR later falls to at most half its value now
STEP_DROP_FROM = 0.1  # a one-step drop counts from an LR at least this fraction of the LR now (step_drop_ahead)
# The decay part of the schedule is summarised in at most this many chunks: LD costs O(points * chunks).
MAX_CHUNKS = 512
# Longest schedule built dense from a function (LRSchedule.from_function): a dense schedule holds about 50 bytes per
# step (the LRs, three prefix arrays for the O(1) questions, u and its running sum), 50 MB here; longer ones are knots.
MAX_DENSE_STEPS = 1_000_000


class LRSchedule:
    """A planned LR schedule for steps ``0..horizon`` (``lrs[t]`` is the LR step t uses).

    ``LRSchedule(lrs)`` is the dense form; :meth:`from_knots` and :meth:`from_function` build the compressed one for
    long runs. Both answer the same questions; only the dense form has the per-step arrays ``lrs``, ``u`` and ``cum``.
    The form is a storage this class wraps (:class:`~curvecast.forecasting.dense_schedule.DenseSchedule` or
    :class:`~curvecast.forecasting.knot_schedule.KnotSchedule`): the per-step questions go to it, the laws' features
    are built here on its areas and decay chunks.

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

    def __init__(self, lrs: Sequence[float] | np.ndarray, rise_rtol: float = 1e-3) -> None:
        self._form: DenseSchedule | KnotSchedule = DenseSchedule(lrs, rise_rtol)

    @classmethod
    def _of(cls, form: DenseSchedule | KnotSchedule) -> LRSchedule:
        schedule = cls.__new__(cls)
        schedule._form = form
        return schedule

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
        return cls._of(KnotSchedule(steps, lrs, rise_rtol))

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

    @property
    def dense(self) -> bool:
        """Whether the schedule holds one LR per step (False for one described by knots)."""
        return self._form.dense

    @property
    def horizon(self) -> int:
        """The last planned step."""
        return self._form.horizon

    @property
    def peak_lr(self) -> float:
        """The highest planned LR."""
        return self._form.peak_lr

    def __len__(self) -> int:
        return len(self._form)

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps and LRs the schedule interpolates linearly (every step of a dense schedule)."""
        return self._form.knots()

    def u_at(self, steps: np.ndarray) -> np.ndarray:
        """The normalised LR ``u`` at integer ``steps`` (clipped to ``0..horizon``)."""
        return self._form.u_at(steps)

    def response(self, power: float) -> LRSchedule:
        """The schedule of ``u ** power`` (a response to the LR that is not linear in it), in the same form."""
        return self._of(self._form.response(power))

    # -- O(1) questions about a step (O(log knots) for knots) ----------------------------------------------------------

    def lr(self, step: int) -> float:
        """The planned LR at ``step`` (the last planned LR past the end of the schedule)."""
        return self._form.lr(step)

    def rose_between(self, after: int, upto: int) -> bool:
        """Whether the LR rose at some step in ``(after, upto]``."""
        return self._form.rose_between(after, upto)

    def drop_ahead(self, step: int, factor: float = DROP_FACTOR) -> bool:
        """Whether the LR later falls to at most ``factor`` times its (positive) value at ``step``."""
        return self._form.drop_ahead(step, factor)

    def step_drop_ahead(self, step: int, factor: float = DROP_FACTOR, least: float = STEP_DROP_FROM) -> bool:
        """Whether a step schedule's drop lies ahead of ``step``: the LR falls within one step to at most ``factor``
        times its value, from an LR at least ``least`` times the LR at ``step`` (the last steps of a cosine to zero
        fall by that factor too, from LRs far too small to count)."""
        return self._form.step_drop_ahead(step, factor, least)

    def fraction_of_peak(self, step: int) -> float:
        """The LR at ``step`` as a fraction of the highest LR up to ``step`` (1.0 before any LR is set)."""
        return self._form.fraction_of_peak(step)

    # -- the dense form's per-step arrays (AttributeError for knots) ---------------------------------------------------

    @property
    def lrs(self) -> np.ndarray:
        """The planned LR of every step."""
        return self._form.lrs

    @property
    def u(self) -> np.ndarray:
        """The schedule normalised by its peak (all zeros for an all-zero schedule)."""
        return self._form.u

    @property
    def cum(self) -> np.ndarray:
        """``cum[t]``: the LR area of steps 0..t, in steps at the peak LR."""
        return self._form.cum

    # -- features of the schedule-aware laws (built on first use) ------------------------------------------------------

    @property
    def peak_step(self) -> int:
        """The first step at the peak LR."""
        return self._form.peak_step

    @property
    def s_w(self) -> float:
        """The warmup area as an offset that keeps S1 + S_W positive from step 0 on."""
        return self._form.s_w

    @cached_property
    def _decay_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LR changes after the peak as at most ``MAX_CHUNKS`` chunks: (signed drop, step, LR after the drop)."""
        return self._form.decay_chunks(MAX_CHUNKS)

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
        return self._form.area(steps)

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
        scaled: dict[float, np.ndarray] = {}  # lr^-gamma * S_k, once per gamma (the shape grids share a few)
        # 1 - (c lr^-gamma S_k + 1)^-beta, computed in one buffer: the (steps x drops) temporaries of the expression
        # written out cost a quarter of the time in allocation (the same operations, the same values).
        g = np.empty_like(s_k)
        for i, (c, beta, gamma) in enumerate(shapes):
            if gamma not in scaled:
                scaled[gamma] = lr**-gamma * s_k
            np.multiply(c, scaled[gamma], out=g)
            g += 1.0
            np.power(g, -beta, out=g)
            np.subtract(1.0, g, out=g)
            out[i] = g @ drop
        return out

    def total_drop_after(self, step: float) -> float:
        """Net normalised LR drop planned after ``step`` (0 when the LR stays flat or rises)."""
        later = self.drop_step > step
        return float(max(self.drop[later].sum(), 0.0))
