"""KnotSchedule: the storage of an LRSchedule given by knots, linear between them at integer steps, for schedules too
long to hold one LR per step (see :mod:`curvecast.forecasting.schedule`).

A form answers the per-step questions and the areas; :class:`~curvecast.forecasting.schedule.LRSchedule` wraps it and
adds the laws' features on top. It knows nothing of LRSchedule: the schedule's constants reach it as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from curvecast.forecasting.knots import interpolate_knots

__all__ = ["KnotSchedule"]


class KnotSchedule:
    """An LR schedule given by knots, linear between them at integer steps (see the module docstring).

    Wrapped by :meth:`LRSchedule.from_knots`. Memory and set-up are O(knots); a question about a step is a binary
    search, O(log knots); the forecaster's features are O(points * chunks), as for the dense form.
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

    def response(self, power: float) -> KnotSchedule:
        return KnotSchedule(self.knot_steps, self._u_knots**power, self.rise_rtol)

    def _clip(self, step: int) -> int:
        return min(max(int(step), 0), self.horizon)

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

    def drop_ahead(self, step: int, factor: float) -> bool:
        if step > self.horizon:
            return False
        i = self._clip(step)
        now = self.lr(i)
        later = int(np.searchsorted(self.knot_steps, i, side="right"))  # the first knot after i
        ahead = min(now, float(self._min_from[later])) if later < len(self.knot_steps) else now
        return now > 0.0 and ahead <= factor * now

    def step_drop_ahead(self, step: int, factor: float, least: float) -> bool:
        if step >= self.horizon:
            return False
        i = self._clip(step)
        now = self.lr(i)
        if not now > 0.0:
            return False
        # The segments from the one holding step i on. Within a falling segment (a to b over n steps, d a step) the
        # ratio of one step's LR to the step before's falls as the LR does: its best step at or above `least * now`
        # is the last such one, m* = floor((a - least * now) / d), within the segment and not before step i.
        first = max(int(np.searchsorted(self.knot_steps, i, side="right")) - 1, 0)
        steps, lrs = self.knot_steps[first:].astype(np.float64), self.knot_lrs[first:]
        a, b, n = lrs[:-1], lrs[1:], np.diff(steps)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(a > b, (a - b) / n, 0.0)
            top = np.floor(np.where(d > 0, (a - least * now) / d, -1.0))
        m = np.minimum(top, n - 1)
        lowest = np.maximum(i - steps[:-1], 0.0)
        before = a - d * m
        after = np.where(m + 1 >= n, b, a - d * (m + 1))
        falls = (d > 0) & (m >= lowest) & (after <= factor * before) & (before >= least * now) & (before > 0.0)
        return bool(np.any(falls))

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

    def decay_chunks(self, max_chunks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As the dense form's, from runs: a segment after the peak is a run of equal per-step drops."""
        p = int(np.argmax(self.knot_lrs))
        u, count = self._u_knots, self._lengths[p:]
        per_step = (u[p:-1] - u[p + 1 :]) / count
        moving = per_step != 0.0
        if not moving.any():
            return np.zeros(0), np.zeros(0), np.zeros(0)
        runs = _DropRuns(per_step[moving], count[moving], self.knot_steps[p:-1][moving] + 1)
        total = int(count[moving].sum())
        edges = np.linspace(0, total, min(max_chunks, total) + 1).round().astype(np.int64)
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
