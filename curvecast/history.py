"""RunHistory: per-step columnar storage of a run's named series, bounded in memory for any run length.

Each series keeps an exact recent window and, behind it, a compressed older part made of bins (mean step, mean value,
count). Bins are equal in log(step), the spacing loss curves and their power laws live in: the fast early descent
keeps fine bins and the slow late part coarse ones. When the compressed part passes its budget the bins double in
width, so memory stays bounded however long the run is: a 10-million-step run costs at most ``2 * window + max_bins``
points per series, with bins about 0.5% of their step wide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RunHistory", "Series"]

_STATE_VERSION = 1
_INITIAL_WIDTH = 1e-4  # in log1p(step): below one step per bin until step 10,000


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
    """One series: compressed bins of old points followed by the exact recent window."""

    __slots__ = ("bin_steps", "bin_values", "bin_counts", "steps", "values", "width", "_cache")

    def __init__(self) -> None:
        self.bin_steps: list[float] = []
        self.bin_values: list[float] = []
        self.bin_counts: list[int] = []
        self.steps: list[int] = []
        self.values: list[float] = []
        self.width = _INITIAL_WIDTH  # bin width in log1p(step)
        self._cache: Series | None = None

    @property
    def last_step(self) -> float:
        if self.steps:
            return self.steps[-1]
        return self.bin_steps[-1] if self.bin_steps else -math.inf

    def rewind(self, step: int) -> None:
        """Drop every point at or after ``step`` (a resumed run repeating steps replaces them)."""
        cut = int(np.searchsorted(np.asarray(self.steps), step, side="left"))
        del self.steps[cut:], self.values[cut:]
        if cut == 0 and self.bin_steps:
            # A bin straddling `step` cannot be split: it goes whole, with the few old points it holds.
            keep = int(np.searchsorted(np.asarray(self.bin_steps), step, side="left"))
            del self.bin_steps[keep:], self.bin_values[keep:], self.bin_counts[keep:]
        self._cache = None

    def compress(self, n_points: int, max_bins: int) -> None:
        """Move the oldest ``n_points`` of the window into the log-spaced bins, widening them to stay bounded."""
        steps = np.asarray(self.bin_steps + self.steps[:n_points], dtype=np.float64)
        values = np.asarray(self.bin_values + self.values[:n_points], dtype=np.float64)
        counts = np.asarray(self.bin_counts + [1] * n_points, dtype=np.float64)
        del self.steps[:n_points], self.values[:n_points]
        steps, values, counts = _bin_means(steps, values, counts, self.width)
        while len(steps) > max_bins:
            self.width *= 2
            steps, values, counts = _bin_means(steps, values, counts, self.width)
        self.bin_steps, self.bin_values = steps.tolist(), values.tolist()
        self.bin_counts = counts.astype(np.int64).tolist()
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


def _bin_means(steps: np.ndarray, values: np.ndarray, counts: np.ndarray, width: float):
    """Weighted means of the rows falling in each bin of ``width`` in log1p(step); non-finite values are left out."""
    keys = np.floor(np.log1p(np.maximum(steps, 0.0)) / width)
    edges = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    weight = np.add.reduceat(counts, edges)
    step_mean = np.add.reduceat(steps * counts, edges) / weight
    finite = np.isfinite(values)
    finite_weight = np.add.reduceat(np.where(finite, counts, 0.0), edges)
    value_sum = np.add.reduceat(np.where(finite, values * counts, 0.0), edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        value_mean = np.where(finite_weight > 0, value_sum / np.maximum(finite_weight, 1e-300), np.nan)
    # A bin whose raw points were all non-finite reads NaN, so the gap stays visible to the forecaster.
    return step_mean, value_mean, weight


class RunHistory:
    """Named series of (step, value), step-monotonic, bounded in memory, checkpointable with plain Python types.

    Args:
        window: points per series kept exactly; older points are compressed into bins.
        max_bins: bins per series for the compressed older part.

    Appending a step at or before a series' last step replaces everything from that step on, which is what a run
    resumed from an earlier checkpoint does.

    Example::

        >>> h = RunHistory()
        >>> for step in range(5):
        ...     h.append("loss", step, 1.0 / (step + 1))
        >>> h.series("loss").values.round(2).tolist()
        [1.0, 0.5, 0.33, 0.25, 0.2]
    """

    def __init__(self, window: int = 20_000, max_bins: int = 4_000) -> None:
        if window < 1:
            raise ValueError(f"Expected `window` to be a positive int, but got {window}")
        if max_bins < 2:
            raise ValueError(f"Expected `max_bins` to be at least 2, but got {max_bins}")
        self.window = window
        self.max_bins = max_bins
        self._series: dict[str, _SeriesStore] = {}
        self._listeners: list[Callable[[str, int, float], None]] = []

    def add_listener(self, listener: Callable[[str, int, float], None]) -> None:
        """Call ``listener(name, step, value)`` after each recorded point (listeners are not saved in the state)."""
        self._listeners.append(listener)

    def append(self, name: str, step: int, value: float) -> None:
        """Record ``value`` at ``step``; a step at or before the last one rewinds the series to it first."""
        store = self._series.get(name)
        if store is None:
            store = self._series[name] = _SeriesStore()
        step = int(step)
        if step <= store.last_step:
            store.rewind(step)
        value = float(value)
        store.steps.append(step)
        store.values.append(value)
        store._cache = None
        if len(store.steps) >= 2 * self.window:
            store.compress(len(store.steps) - self.window, self.max_bins)
        for listener in self._listeners:
            listener(name, step, value)

    def extend(self, name: str, steps, values) -> None:
        """Record many points at once; ``steps`` must strictly increase within the call."""
        steps = np.asarray(steps)
        values = np.asarray(values, dtype=np.float64)
        if steps.ndim != 1 or values.shape != steps.shape:
            raise ValueError(
                f"Expected `steps` and `values` to be 1-D of the same length, but got shapes {steps.shape} and "
                f"{values.shape}"
            )
        if len(steps) > 1 and np.any(np.diff(steps) <= 0):
            i = int(np.argmax(np.diff(steps) <= 0)) + 1
            raise ValueError(f"`steps` must increase, but step {steps[i]} follows {steps[i - 1]} (index {i})")
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            self.append(name, step, value)

    def series(self, name: str) -> Series:
        """Numpy views (read-only) of one series, compressed older bins first, then the exact window."""
        if name not in self._series:
            raise KeyError(f"No series named {name!r}; recorded series: {sorted(self._series)}")
        return self._series[name].view()

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
        store = self._series[name]
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
                    "width": s.width,
                    "steps": list(s.steps),
                    "values": list(s.values),
                }
                for name, s in self._series.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version = state.get("version")
        if version != _STATE_VERSION:
            raise ValueError(f"Expected a RunHistory state of version {_STATE_VERSION}, but got {version!r}")
        self.window = int(state.get("window", self.window))
        self.max_bins = int(state.get("max_bins", self.max_bins))
        self._series = {}
        for name, s in state["series"].items():
            store = _SeriesStore()
            store.bin_steps = [float(x) for x in s["bin_steps"]]
            store.bin_values = [float(x) for x in s["bin_values"]]
            store.bin_counts = [int(x) for x in s["bin_counts"]]
            store.width = float(s.get("width", _INITIAL_WIDTH))
            store.steps = [int(x) for x in s["steps"]]
            store.values = [float(x) for x in s["values"]]
            self._series[name] = store

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {self.num_points(name)}" for name in self.names())
        return f"RunHistory({sizes})"
