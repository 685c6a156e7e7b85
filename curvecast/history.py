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
from collections.abc import Callable, Sequence
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
        if not isinstance(state, dict):
            raise TypeError(f"Expected a RunHistory state to be a dict, but got {type(state).__name__}")
        version = state.get("version")  # first: another version's fields differ, and this is the error to give
        if type(version) is not int or version != _STATE_VERSION:
            raise ValueError(f"Expected a RunHistory state of version {_STATE_VERSION}, but got {version!r}")
        _check_keys("state", state, _STATE_KEYS)
        window = _checked_size("state['window']", state["window"], 1)
        max_bins = _checked_size("state['max_bins']", state["max_bins"], _MIN_BINS)
        series = state["series"]
        if not isinstance(series, dict):
            raise TypeError(f"Expected state['series'] to be a dict, but got {type(series).__name__}")
        stores = {}
        for name, entry in series.items():
            if not isinstance(name, str):
                raise TypeError(f"Expected the series names in state['series'] to be str, but got {name!r}")
            stores[name] = _store_from_state(f"state['series'][{name!r}]", entry, window, max_bins)
        self.window, self.max_bins, self._series = window, max_bins, stores

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {self.num_points(name)}" for name in self.names())
        return f"RunHistory({sizes})"


def _check_keys(where: str, entry: dict[str, Any], expected: frozenset[str] | tuple[str, ...]) -> None:
    missing = sorted(set(expected) - set(entry))
    if missing:
        raise KeyError(f"{where} lacks {missing}")
    unknown = sorted(map(repr, set(entry) - set(expected)))
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}")


def _store_from_state(where: str, entry: Any, window: int, max_bins: int) -> _SeriesStore:
    """A new store from one saved series, every field checked; errors name the field as ``where['field']``."""
    if not isinstance(entry, dict):
        raise TypeError(f"Expected {where} to be a dict, but got {type(entry).__name__}")
    _check_keys(where, entry, _SERIES_KEYS)
    store = _SeriesStore()
    store.width = _checked_width(f"{where}['width']", entry["width"])
    store.steps = _step_column(f"{where}['steps']", entry["steps"])
    store.values = _float_column(f"{where}['values']", entry["values"])
    store.bin_last = _step_column(f"{where}['bin_last']", entry["bin_last"])
    store.bin_counts = _int_column(f"{where}['bin_counts']", entry["bin_counts"])
    store.bin_steps = _float_column(f"{where}['bin_steps']", entry["bin_steps"])
    store.bin_values = _float_column(f"{where}['bin_values']", entry["bin_values"])
    _check_lengths(where, store, window, max_bins)
    _check_increasing(f"{where}['steps']", store.steps)
    _check_increasing(f"{where}['bin_last']", store.bin_last)
    _check_bins(where, store)
    return store


def _checked_width(field: str, width: Any) -> float:
    """A bin width this class can have produced: _INITIAL_WIDTH doubled 0 to _MAX_DOUBLINGS times.

    A zero, NaN or tiny width would make compression loop forever (or for very long), a huge one would merge
    everything into one bin.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise TypeError(f"Expected {field} to be a float, but got {type(width).__name__} {width!r}")
    if not any(width == _INITIAL_WIDTH * 2**k for k in range(_MAX_DOUBLINGS + 1)):
        raise ValueError(
            f"Expected {field} to be {_INITIAL_WIDTH} * 2**k with 0 <= k <= {_MAX_DOUBLINGS}, but got {width!r}"
        )
    return float(width)


def _sequence(field: str, column: Any) -> Sequence[Any]:
    if not isinstance(column, (list, tuple)):
        raise TypeError(f"Expected {field} to be a list, but got {type(column).__name__}")
    return column


def _step_column(field: str, column: Any) -> list[int]:
    """Steps: non-negative integers up to 2**53 (integral floats taken as ints, like ``append`` does)."""
    column = _sequence(field, column)
    if all(type(x) is int and 0 <= x <= _MAX_STEP for x in column):  # the usual case, without a call per element
        return list(column)
    steps = []
    for i, x in enumerate(column):
        error, result = _step_problem(x)
        if error is not None:
            raise error(f"{field}[{i}] = {x!r} {result}; steps are non-negative integers up to 2**53")
        steps.append(result)
    return steps


def _int_column(field: str, column: Any) -> list[int]:
    """Counts: ints of at least 1 (a bin holds a point at least)."""
    column = _sequence(field, column)
    for i, x in enumerate(column):
        if type(x) is not int:
            raise TypeError(f"Expected {field}[{i}] to be an int, but got {type(x).__name__} {x!r}")
        if x < 1:
            raise ValueError(f"Expected {field}[{i}] to be at least 1, but got {x}")
    return list(column)


def _float_column(field: str, column: Any) -> list[float]:
    """Real numbers as floats (NaN and inf included); bools, strings and None are rejected."""
    column = _sequence(field, column)
    if all(type(x) is float for x in column):
        return list(column)
    for i, x in enumerate(column):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise TypeError(f"Expected {field}[{i}] to be a float, but got {type(x).__name__} {x!r}")
    return [float(x) for x in column]


def _check_lengths(where: str, store: _SeriesStore, window: int, max_bins: int) -> None:
    if len(store.values) != len(store.steps):
        raise ValueError(f"{where}: 'steps' and 'values' differ in length ({len(store.steps)} and {len(store.values)})")
    bins = {"bin_steps": store.bin_steps, "bin_values": store.bin_values, "bin_counts": store.bin_counts}
    for field, column in bins.items():
        if len(column) != len(store.bin_last):
            raise ValueError(
                f"{where}: {field!r} and 'bin_last' differ in length ({len(column)} and {len(store.bin_last)})"
            )
    # A saved history compresses at 2 * window points and keeps at most max_bins bins: more is not from this class.
    if len(store.steps) >= 2 * window:
        raise ValueError(
            f"{where}['steps'] holds {len(store.steps)} points, but a window of {window} keeps fewer than {2 * window}"
        )
    if len(store.bin_last) > max_bins:
        raise ValueError(f"{where} holds {len(store.bin_last)} bins, more than max_bins = {max_bins}")


def _check_increasing(field: str, steps: list[int]) -> None:
    for i in range(1, len(steps)):
        if steps[i] <= steps[i - 1]:
            raise ValueError(f"{field} must increase, but {field}[{i}] = {steps[i]} follows {steps[i - 1]}")


def _check_bins(where: str, store: _SeriesStore) -> None:
    """Bin ``i`` holds ``bin_counts[i]`` distinct steps in ``(bin_last[i - 1], bin_last[i]]`` around its mean step,
    and the exact window starts after the last bin."""
    lowest = 0
    for i, (mean, count, last) in enumerate(zip(store.bin_steps, store.bin_counts, store.bin_last, strict=True)):
        if not lowest <= mean <= last:  # False for NaN too
            raise ValueError(f"{where}['bin_steps'][{i}] = {mean!r} lies outside its bin's steps [{lowest}, {last}]")
        if count > last - lowest + 1:
            raise ValueError(
                f"{where}['bin_counts'][{i}] = {count} is more than the {last - lowest + 1} steps of its bin "
                f"[{lowest}, {last}]"
            )
        lowest = last + 1
    if store.steps and store.steps[0] < lowest:
        raise ValueError(f"{where}['steps'][0] = {store.steps[0]} is not after the last bin's step {lowest - 1}")
