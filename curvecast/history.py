"""RunHistory: per-step columnar storage of a run's named series, bounded in memory for any run length.

Each series keeps an exact recent window and, behind it, a compressed older part made of bins (mean step, mean value,
count, last step). Bins are equal in log(step), the spacing loss curves and their power laws live in: the fast early
descent keeps fine bins and the slow late part coarse ones. When the compressed part passes its budget the bins double
in width, so memory stays bounded however long the run is: a 10-million-step run costs at most ``2 * window + max_bins``
points per series, with bins about 0.5% of their step wide.

The contract of :meth:`RunHistory.append`:

* a step is a non-negative integer up to ``2**53`` (an integral float such as ``3.0`` is taken as ``3``); anything
  else (negative, fractional, NaN, a string, a bool) raises ``ValueError`` or ``TypeError`` naming the series, the
  step and the problem. Steps beyond ``2**53`` cannot be told apart in the float64 views.
* a value is any real number, NaN and infinities included: they are recorded, the anomaly detectors need them.
* a step at or before the series' last step rewinds it: everything recorded from that step on is dropped first (a run
  resumed from an earlier checkpoint replays those steps, and the resumed run's values win). A rewind that reaches
  the compressed part drops the bins holding any point at or after the step. A bin that straddles the step is
  dropped whole, with the few older points it holds: its mean mixes the replaced points with the kept ones and
  cannot be split, and keeping it would keep data the resumed run replaced.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RunHistory", "Series"]

_STATE_VERSION = 2  # 2: bins keep their last raw step (``bin_last``), so a rewind knows exactly which bins it reaches
_INITIAL_WIDTH = 1e-4  # in log1p(step): below one step per bin until step 10,000
# Bins only ever double in width, and at _INITIAL_WIDTH * 2**19 (about 52) every step up to 2**53 (log1p about 36.7)
# falls in one bin, so no compression widens them further: a width outside this range is a damaged state.
_MAX_DOUBLINGS = 19
_MAX_STEP = 2**53  # every integer up to here is exact in float64, so distinct steps stay distinct in the views
# Two bins at least: one bin would flatten the whole compressed part into a single mean, leaving no curve to fit; and
# fewer than one never ends the loop that widens the bins until they fit the budget.
_MIN_BINS = 2
_STATE_KEYS = frozenset({"version", "window", "max_bins", "series"})
_SERIES_KEYS = ("bin_steps", "bin_values", "bin_counts", "bin_last", "width", "steps", "values")


@dataclass(frozen=True)
class Series:
    """A read-only view of one series: ``steps`` and ``values`` (float64), ``counts`` = raw points behind each row.

    Rows from the exact window have a count of 1; rows from the compressed part hold the mean of ``counts`` points.
    """

    steps: np.ndarray
    values: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


class _SeriesStore:
    """One series: compressed bins of old points followed by the exact recent window.

    Invariants (checked on load): ``bin_last`` and ``steps`` strictly increase and the window starts after the last
    bin; bin ``i`` holds ``bin_counts[i]`` distinct integer steps in ``(bin_last[i - 1], bin_last[i]]``, so its mean
    step lies in that range too.
    """

    __slots__ = ("bin_steps", "bin_values", "bin_counts", "bin_last", "steps", "values", "width", "_cache")

    def __init__(self) -> None:
        self.bin_steps: list[float] = []
        self.bin_values: list[float] = []
        self.bin_counts: list[int] = []
        self.bin_last: list[int] = []  # the last raw step in each bin: what a rewind compares with
        self.steps: list[int] = []
        self.values: list[float] = []
        self.width = _INITIAL_WIDTH  # bin width in log1p(step)
        self._cache: Series | None = None

    def rewind(self, step: int) -> None:
        """Drop every point at or after ``step``; bins holding such a point go whole (see the module docstring)."""
        cut = bisect_left(self.steps, step)  # O(log n): no copy of the window
        del self.steps[cut:], self.values[cut:]
        if cut == 0 and self.bin_last:
            keep = bisect_left(self.bin_last, step)  # the bins whose every point is before `step`
            del self.bin_steps[keep:], self.bin_values[keep:], self.bin_counts[keep:], self.bin_last[keep:]
        self._cache = None

    def compress(self, n_points: int, max_bins: int) -> None:
        """Move the oldest ``n_points`` of the window into the log-spaced bins, widening them to stay bounded."""
        rows = _Rows(
            steps=np.asarray(self.bin_steps + self.steps[:n_points], dtype=np.float64),
            values=np.asarray(self.bin_values + self.values[:n_points], dtype=np.float64),
            counts=np.asarray(self.bin_counts + [1] * n_points, dtype=np.int64),
            last=np.asarray(self.bin_last + self.steps[:n_points], dtype=np.int64),
        )
        del self.steps[:n_points], self.values[:n_points]
        rows = _bin_means(rows, self.width)
        while len(rows.steps) > max_bins:  # ends: at most _MAX_DOUBLINGS doublings put every step in one bin
            self.width *= 2
            rows = _bin_means(rows, self.width)
        self.bin_steps, self.bin_values = rows.steps.tolist(), rows.values.tolist()
        self.bin_counts, self.bin_last = rows.counts.tolist(), rows.last.tolist()
        self._cache = None

    def view(self) -> Series:
        if self._cache is None:
            n_bins = len(self.bin_steps)
            steps = np.empty(n_bins + len(self.steps), dtype=np.float64)
            values = np.empty_like(steps)
            counts = np.ones(len(steps), dtype=np.int64)
            steps[:n_bins], steps[n_bins:] = self.bin_steps, self.steps
            values[:n_bins], values[n_bins:] = self.bin_values, self.values
            counts[:n_bins] = self.bin_counts
            for array in (steps, values, counts):
                array.flags.writeable = False
            self._cache = Series(steps, values, counts)
        return self._cache


@dataclass(frozen=True)
class _Rows:
    """Rows about to be binned: mean step, mean value, raw count and last raw step of each."""

    steps: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    last: np.ndarray


def _bin_means(rows: _Rows, width: float) -> _Rows:
    """Weighted means of the rows falling in each bin of ``width`` in log1p(step); non-finite values are left out."""
    keys = np.floor(np.log1p(rows.steps) / width)
    edges = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[edges[1:], len(keys)]
    counts = np.add.reduceat(rows.counts, edges)
    last = rows.last[ends - 1]
    # The mean lies in (previous bin's last step, this bin's last step]; clipping removes the rounding that could
    # otherwise push it a hair outside, so the invariants the loader checks hold exactly.
    lowest = np.r_[0, last[:-1] + 1]
    steps = np.add.reduceat(rows.steps * rows.counts, edges) / counts
    steps = np.clip(steps, lowest, last)
    return _Rows(steps, _value_means(rows, edges, ends), counts, last)


def _value_means(rows: _Rows, edges: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Count-weighted mean of the finite values of each bin; NaN for a bin with none.

    Each row is weighted by its share of its bin's finite weight before summing, so values near the float64 limit
    average to a finite mean instead of overflowing to inf.
    """
    finite = np.isfinite(rows.values)
    finite_counts = np.where(finite, rows.counts, 0)
    finite_weight = np.add.reduceat(finite_counts, edges)
    share = finite_counts / np.repeat(np.maximum(finite_weight, 1), ends - edges)
    means = np.add.reduceat(np.where(finite, rows.values, 0.0) * share, edges)
    # A bin whose raw points were all non-finite reads NaN, so the gap stays visible to the forecaster.
    return np.where(finite_weight > 0, means, np.nan)


def _checked_size(field: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, else a ValueError/TypeError naming ``field``."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"Expected `{field}` to be an int, but got {type(value).__name__} {value!r}") from None
    if value < minimum:
        raise ValueError(f"Expected `{field}` to be at least {minimum}, but got {value}")
    return value


def _step_problem(step: Any) -> tuple[type[Exception], str] | tuple[None, int]:
    """(None, the step as an int) for a valid step, else (the exception type, what is wrong with it)."""
    if isinstance(step, (bool, np.bool_)):
        return TypeError, "is a bool, not an integer"
    if isinstance(step, (float, np.floating)):
        if not math.isfinite(step):
            return ValueError, "is not finite"
        if not float(step).is_integer():
            return ValueError, "is not an integer"
        step = int(step)
    else:
        try:
            step = operator.index(step)  # ints, numpy and torch integer scalars
        except TypeError:
            return TypeError, f"is a {type(step).__name__}, not an integer"
    if step < 0:
        return ValueError, "is negative"
    if step > _MAX_STEP:
        return ValueError, "is above 2**53"
    return None, step


def _checked_step(name: str, step: Any) -> int:
    """The slow path of ``append``: ``step`` as a non-negative int, or an error naming the series and the step."""
    error, result = _step_problem(step)
    if error is not None:
        raise error(f"Series {name!r}: step {step!r} {result}; steps are non-negative integers up to 2**53")
    return result


def _checked_value(name: str, step: int, value: Any) -> float:
    """The slow path of ``append``: ``value`` as a float (NaN and inf included), or an error naming series and step."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"Series {name!r}, step {step}: value {value!r} is a {type(value).__name__}, not a number")
    try:
        return float(value)
    except (TypeError, ValueError) as error:  # None, a complex, a tensor of several elements
        raise TypeError(f"Series {name!r}, step {step}: value {value!r} is not a real number ({error})") from None
    except OverflowError:  # an int beyond float64
        raise ValueError(f"Series {name!r}, step {step}: value {value!r} is beyond the float64 range") from None


class RunHistory:
    """Named series of (step, value), step-monotonic, bounded in memory, checkpointable with plain Python types.

    Args:
        window: points per series kept exactly; older points are compressed into bins.
        max_bins: bins per series for the compressed older part (at least 2).

    Steps are non-negative integers; values are any float, NaN and inf included. Appending a step at or before a
    series' last step replaces everything from that step on, which is what a run resumed from an earlier checkpoint
    does (the module docstring says what becomes of the compressed part).

    Example::

        >>> h = RunHistory()
        >>> for step in range(5):
        ...     h.append("loss", step, 1.0 / (step + 1))
        >>> h.series("loss").values.round(2).tolist()
        [1.0, 0.5, 0.33, 0.25, 0.2]
    """

    def __init__(self, window: int = 20_000, max_bins: int = 4_000) -> None:
        self.window = _checked_size("window", window, 1)
        self.max_bins = _checked_size("max_bins", max_bins, _MIN_BINS)
        self._series: dict[str, _SeriesStore] = {}
        self._listeners: list[Callable[[str, int, float], None]] = []

    def add_listener(self, listener: Callable[[str, int, float], None]) -> None:
        """Call ``listener(name, step, value)`` after each recorded point (listeners are not saved in the state).

        The point is recorded before the listeners run, so a listener that raises leaves it recorded (and the
        listeners after it uncalled); the error reaches the caller of ``append``.
        """
        self._listeners.append(listener)

    def append(self, name: str, step: int, value: float) -> None:
        """Record ``value`` at ``step``; a step at or before the last one rewinds the series to it first.

        Raises:
            ValueError: ``step`` is negative, fractional, not finite or above 2**53.
            TypeError: ``step`` is not a number (or a bool), ``value`` is not a real number, ``name`` is not a str.
        """
        # Runs on every training step (about 1 us in all): a plain int step and float value pass with four
        # cheap checks, anything else takes the checks' slower path.
        if type(step) is not int or step < 0 or step > _MAX_STEP:
            step = _checked_step(name, step)
        if type(value) is not float:
            value = _checked_value(name, step, value)
        store = self._series.get(name)
        if store is None:
            store = self._new_series(name)
        steps = store.steps
        if not steps or step <= steps[-1]:
            store.rewind(step)  # a no-op for a new series; otherwise replaces the replayed part
        steps.append(step)
        store.values.append(value)
        store._cache = None
        if len(steps) >= 2 * self.window:
            store.compress(len(steps) - self.window, self.max_bins)
        for listener in self._listeners:
            listener(name, step, value)

    def _new_series(self, name: str) -> _SeriesStore:
        if not isinstance(name, str):
            raise TypeError(f"A series name must be a str, but got {type(name).__name__} {name!r}")
        store = self._series[name] = _SeriesStore()
        return store

    def extend(self, name: str, steps, values) -> None:
        """Record many points at once; ``steps`` must strictly increase within the call.

        Every step is checked before any is recorded, so a bad step leaves the series as it was.
        """
        steps = np.asarray(steps)
        values = np.asarray(values, dtype=np.float64)
        if steps.ndim != 1 or values.shape != steps.shape:
            raise ValueError(
                f"Expected `steps` and `values` to be 1-D of the same length, but got shapes {steps.shape} and "
                f"{values.shape}"
            )
        checked = [_checked_step(name, step) for step in steps.tolist()]
        for i in range(1, len(checked)):
            if checked[i] <= checked[i - 1]:
                raise ValueError(f"`steps` must increase, but step {checked[i]} follows {checked[i - 1]} (index {i})")
        for step, value in zip(checked, values.tolist(), strict=True):
            self.append(name, step, value)

    def series(self, name: str) -> Series:
        """Numpy views (read-only) of one series, compressed older bins first, then the exact window."""
        return self._store(name).view()

    def _store(self, name: str) -> _SeriesStore:
        if name not in self._series:
            raise KeyError(f"No series named {name!r}; recorded series: {sorted(self._series)}")
        return self._series[name]

    def last(self, name: str) -> tuple[int, float] | None:
        """The last (step, value) of a series, or None if it has no points."""
        store = self._series.get(name)
        if store is None:
            return None
        if store.steps:
            return store.steps[-1], store.values[-1]
        if store.bin_steps:
            return int(store.bin_steps[-1]), store.bin_values[-1]
        return None

    def names(self) -> list[str]:
        return sorted(self._series)

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __len__(self) -> int:
        return len(self._series)

    def num_points(self, name: str) -> int:
        """Raw points recorded in a series (compressed ones included)."""
        store = self._store(name)
        return sum(store.bin_counts) + len(store.steps)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python types only: Lightning >= 2.6 loads checkpoints with ``weights_only=True``."""
        return {
            "version": _STATE_VERSION,
            "window": self.window,
            "max_bins": self.max_bins,
            "series": {
                name: {
                    "bin_steps": list(s.bin_steps),
                    "bin_values": list(s.bin_values),
                    "bin_counts": list(s.bin_counts),
                    "bin_last": list(s.bin_last),
                    "width": s.width,
                    "steps": list(s.steps),
                    "values": list(s.values),
                }
                for name, s in self._series.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state, checking every field first.

        Raises:
            KeyError: a field is missing.
            TypeError: a field has the wrong type.
            ValueError: the version is not this one, a field is out of range, or the series break an invariant
                (lengths, increasing steps, counts, the window and bin budgets).

        All or nothing: the state is read into new objects and swapped in only once all of it is valid, so a failed
        load leaves the history as it was.
        """
        from curvecast.history_state import read_state  # the checks are long; only a resume needs them

        window, max_bins, stores = read_state(state)
        self.window, self.max_bins, self._series = window, max_bins, stores

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {self.num_points(name)}" for name in self.names())
        return f"RunHistory({sizes})"
