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

from collections.abc import Callable
from typing import Any

import numpy as np

from curvecast.history_state import STATE_VERSION, read_state
from curvecast.series_store import MAX_STEP, MIN_BINS, Series, SeriesStore, checked_size, step_problem

__all__ = ["RunHistory", "Series"]


def _checked_step(name: str, step: Any) -> int:
    """The slow path of ``append``: ``step`` as a non-negative int, or an error naming the series and the step."""
    error, result = step_problem(step)
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
        self.window = checked_size("window", window, 1)
        self.max_bins = checked_size("max_bins", max_bins, MIN_BINS)
        self._series: dict[str, SeriesStore] = {}
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
        if type(step) is not int or step < 0 or step > MAX_STEP:
            step = _checked_step(name, step)
        if type(value) is not float:
            value = _checked_value(name, step, value)
        store = self._series.get(name)
        if store is None:
            store = self._new_series(name)
        store.append(step, value)
        if len(store.steps) >= 2 * self.window:
            store.compress(len(store.steps) - self.window, self.max_bins)
        for listener in self._listeners:
            listener(name, step, value)

    def _new_series(self, name: str) -> SeriesStore:
        if not isinstance(name, str):
            raise TypeError(f"A series name must be a str, but got {type(name).__name__} {name!r}")
        store = self._series[name] = SeriesStore()
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

    def _store(self, name: str) -> SeriesStore:
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
            "version": STATE_VERSION,
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
        window, max_bins, stores = read_state(state)
        self.window, self.max_bins, self._series = window, max_bins, stores

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {self.num_points(name)}" for name in self.names())
        return f"RunHistory({sizes})"
