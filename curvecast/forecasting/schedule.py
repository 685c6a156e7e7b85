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
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "DROP_FACTOR",
    "MAX_DENSE_STEPS",
    "MPL_BETA",
    "MPL_C",
    "MPL_GAMMA",
    "LRSchedule",
    "SampledKnots",
    "interpolate_knots",
    "sample_knots",
]

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
# sample_knots: the first grid (a cosine over any length, linear between 4097 points, is off by at most
# (pi / 4096)^2 / 8 ~ 7e-8 of its peak), the bisection's tolerance (a fraction of the peak LR: an LR area off by 1e-4
# moves S1 by as little, far below what a forecast resolves), and the most evaluations (about 5-10 us each for a torch
# scheduler's closed form, so under 0.7 s; a schedule that needs more changes too often to summarise and is refused).
SAMPLE_GRID = 4096
SAMPLE_RTOL = 1e-4
MAX_SAMPLES = 65_536


@dataclass(frozen=True)
class SampledKnots:
    """Knots of a sampled LR function: increasing integer ``steps``, their ``lrs`` (linear in between), about the
    largest error between knots (``tolerance``, in LR units) and the number of ``evaluations`` of the function."""

    steps: np.ndarray
    lrs: np.ndarray
    tolerance: float
    evaluations: int


def interpolate_knots(steps: np.ndarray, lrs: np.ndarray, step: int) -> float:
    """The LR at integer ``step`` of knots ``(steps, lrs)``, linear between knots and flat outside them: O(log knots).

    Example:
        >>> interpolate_knots(np.array([0, 10]), np.array([1.0, 0.0]), 4)
        0.6
    """
    j = int(np.searchsorted(steps, step, side="right")) - 1
    if j < 0:
        return float(lrs[0])
    if j >= len(steps) - 1 or steps[j] == step:
        return float(lrs[j])
    a, b = int(steps[j]), int(steps[j + 1])
    return float(lrs[j] + (lrs[j + 1] - lrs[j]) * ((step - a) / (b - a)))


def _evaluate(lr_of_steps: Callable[[np.ndarray], np.ndarray], steps: np.ndarray) -> np.ndarray:
    values = np.asarray(lr_of_steps(steps), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise ValueError(f"the LR at step {int(steps[bad[0]])} is {values[bad[0]]}: not finite and non-negative")
    return values


def sample_knots(
    lr_of_steps: Callable[[np.ndarray], np.ndarray],
    first: int,
    last: int,
    scale: float = 0.0,
    max_evaluations: int = MAX_SAMPLES,
) -> SampledKnots | None:
    """Knots of ``lr_of_steps`` on the integer steps ``first..last``, linear between knots, by adaptive bisection.

    A grid of ``SAMPLE_GRID`` intervals first; then each interval whose midpoint lies off the line between its ends by
    more than ``SAMPLE_RTOL`` of the peak (the largest LR seen, or ``scale`` if larger) is split, round after round,
    down to one step: a jump ends up between two knots one step apart, a smooth stretch at the spacing its curvature
    needs. A feature narrower than the first grid that no midpoint touches (a spike between two grid points) is
    missed, as in any sampling. Raises ValueError on a non-finite or negative LR.

    Args:
        lr_of_steps: maps an int64 array of steps to their LRs.
        scale: the LR the tolerance is relative to, when larger than every sampled LR (e.g. the peak of a prefix).
        max_evaluations: give up past this many evaluations.

    Returns:
        the knots, or None when the schedule needs more than ``max_evaluations`` evaluations to follow.

    Example:
        >>> knots = sample_knots(lambda t: np.where(t < 700, 1.0, 0.1), 0, 100_000)
        >>> int(knots.steps[np.argmax(knots.lrs < 1.0) - 1]), int(knots.steps[np.argmax(knots.lrs < 1.0)])
        (699, 700)
    """
    steps = np.unique(np.linspace(first, last, min(SAMPLE_GRID, last - first) + 1).round().astype(np.int64))
    lrs = _evaluate(lr_of_steps, steps)
    evaluations = len(steps)
    pending = np.ones(len(steps), dtype=bool)  # pending[i]: the interval steps[i]..steps[i + 1] is still to check
    while True:
        a, b = steps[:-1], steps[1:]
        check = pending[:-1] & (b - a >= 2)
        if not check.any():
            # Twice the bisection's tolerance: a jump just under it at an interval's midpoint is a jump under twice
            # it between the knots, which the line misses by up to the jump.
            return SampledKnots(steps, lrs, 2.0 * SAMPLE_RTOL * max(scale, float(lrs.max())), evaluations)
        mid = (a[check] + b[check]) // 2
        evaluations += len(mid)
        if evaluations > max_evaluations:
            return None
        at_mid = _evaluate(lr_of_steps, mid)
        ya, yb = lrs[:-1][check], lrs[1:][check]
        line = ya + (yb - ya) * ((mid - a[check]) / (b[check] - a[check]))
        tolerance = SAMPLE_RTOL * max(scale, float(lrs.max()), float(at_mid.max()))
        off = np.abs(at_mid - line) > tolerance
        pending[:-1][check] = off  # both halves of an interval off its line are checked again, the others are done
        order = np.argsort(np.concatenate([steps, mid]), kind="stable")
        steps = np.concatenate([steps, mid])[order]
        lrs = np.concatenate([lrs, at_mid])[order]
        pending = np.concatenate([pending, off])[order]


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
        return _KnotSchedule(steps, lrs, rise_rtol)

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


class _KnotSchedule(LRSchedule):
    """An LRSchedule given by knots, linear between them at integer steps (see the module docstring).

    Built by :meth:`LRSchedule.from_knots`. Memory and set-up are O(knots); a question about a step is a binary search,
    O(log knots); the forecaster's features are O(points * chunks), as for the dense form.
    """

    dense = False

    def __init__(self, steps: Sequence[int] | np.ndarray, lrs: Sequence[float] | np.ndarray, rise_rtol: float) -> None:
        knot_steps, values = _checked_knots(steps, lrs)
        self.knot_steps, self.knot_lrs = knot_steps, values
        self.horizon = int(knot_steps[-1])
        self.peak_lr = float(values.max())
        self.rise_rtol = rise_rtol
        self._u_knots = values / self.peak_lr if self.peak_lr > 0 else np.zeros_like(values)
        self._lengths = np.diff(knot_steps)  # steps from each knot to the next
        # O(knots) once, as the dense form's per-step arrays: the highest LR up to each knot, the lowest from it on, the
        # rises at the start of each segment and the last rise before it, the LR area up to each knot.
        self._peak_upto = np.maximum.accumulate(values)
        self._min_from = np.minimum.accumulate(values[::-1])[::-1]
        self._rises = self._rising_steps()
        last_rise = np.where(self._rises > 0, knot_steps[:-1] + self._rises, -1)
        self._last_rise_before = np.concatenate([[-1], np.maximum.accumulate(last_rise)])
        self._cum_knots = self._areas_at_knots()

    def __len__(self) -> int:
        return self.horizon + 1

    def _no_dense_array(self, name: str) -> AttributeError:
        return AttributeError(
            f"a schedule of {self.horizon + 1} steps given by {len(self.knot_steps)} knots has no per-step `{name}` "
            "array: ask lr(step), u_at(steps), area(steps) or knots()"
        )

    @property
    def lrs(self) -> np.ndarray:
        raise self._no_dense_array("lrs")

    @property
    def u(self) -> np.ndarray:
        raise self._no_dense_array("u")

    @property
    def cum(self) -> np.ndarray:
        raise self._no_dense_array("cum")

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        return self.knot_steps, self.knot_lrs

    def response(self, power: float) -> LRSchedule:
        return _KnotSchedule(self.knot_steps, self._u_knots**power, self.rise_rtol)

    # -- interpolation ------------------------------------------------------------------------------------------------

    def _at(self, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``values`` (given at the knots) interpolated at integer ``steps``, vectorised."""
        t = np.clip(np.asarray(steps, dtype=np.int64), 0, self.horizon)
        if len(values) == 1:
            return np.full(t.shape, values[0])
        j = np.clip(np.searchsorted(self.knot_steps, t, side="right") - 1, 0, len(values) - 2)
        ya, yb = values[j], values[j + 1]
        inside = ya + (yb - ya) * ((t - self.knot_steps[j]) / self._lengths[j])
        return np.where(t == self.knot_steps[j + 1], yb, inside)  # the last knot exactly, as interpolate_knots

    def _areas_at_knots(self) -> np.ndarray:
        """LR area (in peak-LR steps) of steps 0..k at each knot k: a segment of n steps from u_a to u_b adds the
        sum of its n interpolated values after u_a, n u_a + (u_b - u_a)(n + 1) / 2."""
        u, n = self._u_knots, self._lengths.astype(np.float64)
        adds = n * u[:-1] + (u[1:] - u[:-1]) * (n + 1.0) / 2.0
        return np.concatenate([[u[0]], u[0] + np.cumsum(adds)])

    def _cum_at(self, steps: np.ndarray) -> np.ndarray:
        """``cum[t]`` of the dense form at integer ``steps``: the area up to the knot before, plus the partial sum."""
        t = np.asarray(steps, dtype=np.int64)
        if len(self.knot_steps) == 1:
            return np.full(t.shape, self._cum_knots[0])
        j = np.clip(np.searchsorted(self.knot_steps, t, side="right") - 1, 0, len(self.knot_steps) - 2)
        ua, ub = self._u_knots[j], self._u_knots[j + 1]
        m, n = (t - self.knot_steps[j]).astype(np.float64), self._lengths[j].astype(np.float64)
        return self._cum_knots[j] + m * ua + (ub - ua) * (m * (m + 1.0) / (2.0 * n))

    def _rising_steps(self) -> np.ndarray:
        """How many steps at the start of each segment rise by more than ``rise_rtol`` from the step before.

        Within a rising segment the per-step increase d is constant while the LR grows, so the rises are its first
        k steps, those with d > rtol * lr(k - 1): k = ceil((d - rtol * lr_a) / (rtol * d)), nudged by a step where
        rounding put it on the wrong side.
        """
        ya, yb, n, rtol = self.knot_lrs[:-1], self.knot_lrs[1:], self._lengths, self.rise_rtol
        d = (yb - ya) / n
        up = d > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = np.where(up, (d - rtol * ya) / (rtol * d), 0.0)
        k = np.clip(np.ceil(np.nan_to_num(bound, posinf=np.inf)), 0, n).astype(np.int64)
        k = np.where(up, k, 0)
        k = np.where((k >= 1) & ~self._rises_at(k), k - 1, k)
        return np.where(up & (k < n) & self._rises_at(k + 1), k + 1, k)

    def _rises_at(self, k: np.ndarray) -> np.ndarray:
        """Whether step k of each segment (1..n) rose from step k - 1, with the interpolated values."""
        ya, yb, n = self.knot_lrs[:-1], self.knot_lrs[1:], self._lengths
        k = np.clip(k, 1, n)
        now = np.where(k >= n, yb, ya + (yb - ya) * (k / n))
        before = ya + (yb - ya) * ((k - 1) / n)
        return now > before * (1.0 + self.rise_rtol)

    # -- O(log knots) questions about a step --------------------------------------------------------------------------

    def lr(self, step: int) -> float:
        return interpolate_knots(self.knot_steps, self.knot_lrs, self._clip(step))

    def rose_between(self, after: int, upto: int) -> bool:
        if after >= self.horizon:
            return False
        return self._last_rise(self._clip(upto)) > after

    def _last_rise(self, step: int) -> int:
        if step <= 0:
            return -1
        j = int(np.searchsorted(self.knot_steps, step, side="left")) - 1  # the segment with knot[j] < step <= knot[j+1]
        if self._rises[j] > 0:
            return min(int(self.knot_steps[j] + self._rises[j]), step)
        return int(self._last_rise_before[j])

    def drop_ahead(self, step: int, factor: float = DROP_FACTOR) -> bool:
        if step > self.horizon:
            return False
        i = self._clip(step)
        now = self.lr(i)
        later = int(np.searchsorted(self.knot_steps, i, side="right"))  # the first knot after i
        ahead = min(now, float(self._min_from[later])) if later < len(self.knot_steps) else now
        return now > 0.0 and ahead <= factor * now

    def fraction_of_peak(self, step: int) -> float:
        i = self._clip(step)
        now = self.lr(i)
        peak = max(float(self._peak_upto[int(np.searchsorted(self.knot_steps, i, side="right")) - 1]), now)
        return now / peak if peak > 0 else 1.0

    # -- features of the schedule-aware laws --------------------------------------------------------------------------

    def u_at(self, steps: np.ndarray) -> np.ndarray:
        return self._at(steps, self._u_knots)

    @cached_property
    def peak_step(self) -> int:
        return int(self.knot_steps[int(np.argmax(self.knot_lrs))])

    @cached_property
    def s_w(self) -> float:
        return float(self._cum_at(np.array([self.peak_step]))[0]) + 1.0

    def area(self, steps: np.ndarray) -> np.ndarray:
        t = np.clip(np.asarray(steps, dtype=np.float64), 0.0, self.horizon)
        i = np.minimum(np.floor(t).astype(np.int64), max(self.horizon - 1, 0))
        j = np.minimum(i + 1, self.horizon)
        at_i = self._cum_at(i)
        return at_i + (t - i) * (self._cum_at(j) - at_i)

    @cached_property
    def _decay_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As the dense form's, from runs: a segment after the peak is a run of equal per-step drops."""
        p = int(np.argmax(self.knot_lrs))
        u, count = self._u_knots, self._lengths[p:]
        per_step = (u[p:-1] - u[p + 1 :]) / count
        moving = per_step != 0.0
        if not moving.any():
            return np.zeros(0), np.zeros(0), np.zeros(0)
        runs = _DropRuns(per_step[moving], count[moving], self.knot_steps[p:-1][moving] + 1)
        total = int(count[moving].sum())
        edges = np.linspace(0, total, min(_MAX_CHUNKS, total) + 1).round().astype(np.int64)
        bounds = np.append(edges[:-1][np.diff(edges) > 0], total)
        drop_sum, mag_sum, pos_sum = runs.sums_before(bounds)
        drop, mag = np.diff(drop_sum), np.diff(mag_sum)
        pos = np.where(runs.within_one_run(bounds), runs.mean_step(bounds), np.diff(pos_sum) / np.maximum(mag, 1e-300))
        keep = mag > 0
        drop_step = pos[keep]
        return drop[keep], drop_step, self.u_at(np.round(drop_step).astype(np.int64))


class _DropRuns:
    """Per-step drops in runs (``size`` equal drops ``d`` at steps ``first, first + 1, ...``), and the running sums
    the dense form would take over them one step at a time: of the drop, of its size, of its size times its step."""

    def __init__(self, d: np.ndarray, size: np.ndarray, first: np.ndarray) -> None:
        self.d, self.mag = d, np.abs(d)
        self.size, self.first = size.astype(np.float64), first.astype(np.float64)
        self.ends = np.concatenate([[0], np.cumsum(size)])  # drops before each run (exact integers)
        n, p = self.size, self.first
        self.drop0 = np.concatenate([[0.0], np.cumsum(n * d)])
        self.mag0 = np.concatenate([[0.0], np.cumsum(n * self.mag)])
        self.pos0 = np.concatenate([[0.0], np.cumsum(self.mag * (n * p + n * (n - 1.0) / 2.0))])

    def sums_before(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three sums over the first ``k`` drops, for each k."""
        r, off = self._run_and_offset(k)
        off = off.astype(np.float64)
        drop = self.drop0[r] + off * self.d[r]
        mag = self.mag0[r] + off * self.mag[r]
        pos = self.pos0[r] + self.mag[r] * (off * self.first[r] + off * (off - 1.0) / 2.0)
        return drop, mag, pos

    def _run_and_offset(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.clip(np.searchsorted(self.ends, k, side="right") - 1, 0, len(self.d) - 1)
        return r, k - self.ends[r]

    def within_one_run(self, bounds: np.ndarray) -> np.ndarray:
        """Whether each chunk ``bounds[i]..bounds[i + 1]`` lies in one run."""
        r, _ = self._run_and_offset(bounds[:-1])
        return bounds[1:] <= self.ends[r + 1]

    def mean_step(self, bounds: np.ndarray) -> np.ndarray:
        """The mean step of each chunk's drops if it lies in one run (equal weights): exact, where the running sums
        would lose the last digits to cancellation (a single drop then sits exactly at its integer step)."""
        r, off = self._run_and_offset(bounds[:-1])
        return self.first[r] + off + (np.diff(bounds) - 1.0) / 2.0


def _checked_knots(
    steps: Sequence[int] | np.ndarray, lrs: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Knots as read-only int64 steps (0 first, increasing) and float64 LRs (finite, non-negative), or ValueError."""
    try:
        raw = np.asarray(steps, dtype=np.float64)
        values = np.array(lrs, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"Expected knot `steps` and `lrs` to hold numbers, but got {err}") from None
    if raw.ndim != 1 or values.shape != raw.shape or not raw.size:
        raise ValueError(
            f"Expected knot `steps` and `lrs` 1-D, non-empty and of one length, but got {raw.shape}, {values.shape}"
        )
    if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
        raise ValueError("knot `steps` must be integers")
    knot_steps = raw.astype(np.int64)
    if knot_steps[0] != 0 or np.any(np.diff(knot_steps) <= 0):
        raise ValueError(f"knot `steps` must start at 0 and increase, but got {knot_steps[:3]}...")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"`lrs` must be finite and non-negative, but the LR at step {knot_steps[i]} is {values[i]}")
    knot_steps.flags.writeable = False  # shared read-only between the training thread and the forecast worker
    values.flags.writeable = False
    return knot_steps, values
