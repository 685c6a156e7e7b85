"""Reading a saved RunHistory state back: every field checked, so a damaged checkpoint is refused with the field named.

Kept apart from :mod:`curvecast.history`, whose hot path (``append``) it never touches: only a resume needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curvecast.series_store import (
    INITIAL_WIDTH,
    MAX_DOUBLINGS,
    MAX_STEP,
    MIN_BINS,
    SeriesStore,
    checked_size,
    step_problem,
)

__all__ = ["STATE_VERSION", "read_state"]

STATE_VERSION = 2  # 2: bins keep their last raw step (``bin_last``), so a rewind knows exactly which bins it reaches
_STATE_KEYS = frozenset({"version", "window", "max_bins", "series"})
_SERIES_KEYS = ("bin_steps", "bin_values", "bin_counts", "bin_last", "width", "steps", "values")


def read_state(state: Any) -> tuple[int, int, dict[str, SeriesStore]]:
    """``(window, max_bins, series stores)`` from a saved state, after checking every field (see
    :meth:`~curvecast.history.RunHistory.load_state_dict` for the errors)."""
    if not isinstance(state, dict):
        raise TypeError(f"Expected a RunHistory state to be a dict, but got {type(state).__name__}")
    version = state.get("version")  # first: another version's fields differ, and this is the error to give
    if type(version) is not int or version != STATE_VERSION:
        raise ValueError(f"Expected a RunHistory state of version {STATE_VERSION}, but got {version!r}")
    _check_keys("state", state, _STATE_KEYS)
    window = checked_size("state['window']", state["window"], 1)
    max_bins = checked_size("state['max_bins']", state["max_bins"], MIN_BINS)
    series = state["series"]
    if not isinstance(series, dict):
        raise TypeError(f"Expected state['series'] to be a dict, but got {type(series).__name__}")
    stores = {}
    for name, entry in series.items():
        if not isinstance(name, str):
            raise TypeError(f"Expected the series names in state['series'] to be str, but got {name!r}")
        stores[name] = _store_from_state(f"state['series'][{name!r}]", entry, window, max_bins)
    return window, max_bins, stores


def _check_keys(where: str, entry: dict[str, Any], expected: frozenset[str] | tuple[str, ...]) -> None:
    missing = sorted(set(expected) - set(entry))
    if missing:
        raise KeyError(f"{where} lacks {missing}")
    unknown = sorted(map(repr, set(entry) - set(expected)))
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}")


def _store_from_state(where: str, entry: Any, window: int, max_bins: int) -> SeriesStore:
    """A new store from one saved series, every field checked; errors name the field as ``where['field']``."""
    if not isinstance(entry, dict):
        raise TypeError(f"Expected {where} to be a dict, but got {type(entry).__name__}")
    _check_keys(where, entry, _SERIES_KEYS)
    store = SeriesStore()
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
    """A bin width this class can have produced: INITIAL_WIDTH doubled 0 to MAX_DOUBLINGS times.

    A zero, NaN or tiny width would make compression loop forever (or for very long), a huge one would merge
    everything into one bin.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise TypeError(f"Expected {field} to be a float, but got {type(width).__name__} {width!r}")
    if not any(width == INITIAL_WIDTH * 2**k for k in range(MAX_DOUBLINGS + 1)):
        raise ValueError(
            f"Expected {field} to be {INITIAL_WIDTH} * 2**k with 0 <= k <= {MAX_DOUBLINGS}, but got {width!r}"
        )
    return float(width)


def _sequence(field: str, column: Any) -> Sequence[Any]:
    if not isinstance(column, (list, tuple)):
        raise TypeError(f"Expected {field} to be a list, but got {type(column).__name__}")
    return column


def _step_column(field: str, column: Any) -> list[int]:
    """Steps: non-negative integers up to 2**53 (integral floats taken as ints, like ``append`` does)."""
    column = _sequence(field, column)
    if all(type(x) is int and 0 <= x <= MAX_STEP for x in column):  # the usual case, without a call per element
        return list(column)
    steps = []
    for i, x in enumerate(column):
        error, result = step_problem(x)
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


def _check_lengths(where: str, store: SeriesStore, window: int, max_bins: int) -> None:
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


def _check_bins(where: str, store: SeriesStore) -> None:
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
