"""The curvecast documents read back from an event file, checked field by field before the tab gets them.

An event file is input like any other: a document may come from another version, another writer or a damaged file.
Each function here takes a parsed document (:func:`~curvecast.tensorboard_plugin.summary.parse`) and returns the
fields the tab draws, each of its type or None: a field of the wrong type is left out (its name appended to
``dropped``), a number that is not finite becomes None, a string loses its control characters and is cut, and an
array is thinned (:func:`~curvecast.tensorboard_plugin.thinning.extremes`) to a bounded number of points. Nothing
nested is passed through as it was read, so the size of what the tab serves does not depend on the file.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from curvecast.tensorboard_plugin.thinning import extremes

__all__ = [
    "ANOMALIES",
    "CURVE_POINTS",
    "MESSAGE_CHARS",
    "events",
    "forecast",
    "integer",
    "number",
    "planned_lr",
    "text",
]

CURVE_POINTS = 500  # of a forecast curve or the planned LR: the writer's are 50 and 200 points
ANOMALIES = 50  # the most recent ones, as many as the writer keeps
MESSAGE_CHARS = 300  # an anomaly's message, cut as the writer cuts it
_NAME_CHARS = 64  # an anomaly's kind, series and severity
_MONITOR_CHARS = 200
_MODE_CHARS = 16
_ARRAY_ITEMS = 1_000_000  # longer arrays are refused unread: checking them would take seconds
_MAX_INTEGER = 2**53  # beyond it JavaScript numbers skip integers
_PLAIN = {int, float, type(None)}  # what a writer's numeric arrays hold (bool is not int here: type() is exact)
_INTEGERS = ("step", "horizon", "last_step", "reached_at", "ended_at")
_NUMBERS = ("interval", "final", "final_lo", "final_hi", "target", "prob_target", "step_to_target", "observed", "best",
            "log_scale", "base", "worse_scale")  # fmt: skip
_ANOMALY_TEXTS = ("kind", "series", "severity", "message")
# C0 controls but tab and newline, and DEL, left out: JSON escapes each to six bytes, and the page shows none of them.
# A lone surrogate (JSON's "\ud800") is no character UTF-8 can encode: U+FFFD.
_CLEAN = {**dict.fromkeys([*range(9), *range(11, 32), 127]), **dict.fromkeys(range(0xD800, 0xE000), 0xFFFD)}


def integer(value: Any) -> int | None:
    """``value`` as an int, where it is one (an integral float counts) within JavaScript's exact range, else None.

    Example:
        >>> integer(3), integer(3.0), integer(3.5), integer(True), integer("3"), integer(2**60)
        (3, 3, None, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if not isinstance(value, numbers.Integral):
        value = float(value)
        if not (math.isfinite(value) and value.is_integer()):
            return None
    value = int(value)
    return value if abs(value) <= _MAX_INTEGER else None


def number(value: Any) -> float | None:
    """``value`` as a finite float, else None (booleans and strings are not numbers).

    Example:
        >>> number(2), number(0.5), number(float("inf")), number(10**400), number(False), number("1")
        (2.0, 0.5, None, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int past the float range
        return None
    return value if math.isfinite(value) else None


def text(value: Any, max_chars: int) -> str | None:
    """``value`` cut to ``max_chars`` characters, without control characters (but tab and newline) and with any
    lone surrogate (a JSON ``"\\ud800"``) replaced, or None if it is not a string."""
    if not isinstance(value, str):
        return None
    return value[:max_chars].translate(_CLEAN)


def forecast(document: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    """The forecast document's fields: ints, numbers, ``monitor``, ``mode`` and ``ended_by`` (a run stopped short of
    its horizon by another callback, ended at ``ended_at``), and ``curve`` with ``steps``,
    ``mean``, ``lo`` and ``hi`` of one length (at most :data:`CURVE_POINTS`; ``lo`` and ``hi`` may be None)."""
    out: dict[str, Any] = {}
    for name in _INTEGERS:
        out[name] = _field(document, name, integer, dropped)
    for name in _NUMBERS:
        out[name] = _field(document, name, number, dropped)
    out["monitor"] = _field(document, "monitor", lambda v: text(v, _MONITOR_CHARS), dropped)
    out["mode"] = _field(document, "mode", lambda v: text(v, _MODE_CHARS), dropped)
    out["ended_by"] = _field(document, "ended_by", lambda v: text(v, MESSAGE_CHARS), dropped)
    out["curve"] = _curve(document.get("curve"), dropped)
    return out


def planned_lr(document: dict[str, Any], dropped: list[str]) -> dict[str, Any] | None:
    """The planned LR document's ``horizon``, ``steps`` and ``lrs`` (one length, at most :data:`CURVE_POINTS`),
    or None when it holds no point."""
    columns = _columns(document, "steps", ("lrs",), dropped)
    if not columns["steps"]:
        return None
    return {"horizon": _field(document, "horizon", integer, dropped), **columns}


def events(document: dict[str, Any], dropped: list[str]) -> list[dict[str, Any]]:
    """The events document's anomalies, the last :data:`ANOMALIES` of those with an integer step, oldest first; each
    with ``step``, the strings ``kind``, ``series``, ``severity`` and ``message`` (empty where unreadable) and the
    series' ``value`` at that step (None where not a finite number)."""
    listed = _array(document, "anomalies", dropped)
    if listed is None:
        return []
    kept: list[dict[str, Any]] = []
    bad = 0
    for entry in reversed(listed):  # from the most recent: the work stops at ANOMALIES, however long the list
        step = integer(entry.get("step")) if isinstance(entry, dict) else None
        if step is None:
            bad += 1
            continue
        anomaly: dict[str, Any] = {"step": step}
        for name in _ANOMALY_TEXTS:
            anomaly[name] = text(entry.get(name), MESSAGE_CHARS if name == "message" else _NAME_CHARS) or ""
        anomaly["value"] = number(entry.get("value"))
        kept.append(anomaly)
        if len(kept) == ANOMALIES:
            break
    if bad:
        dropped.append(f"anomalies ({bad} without an integer step)")
    return kept[::-1]


def _field(document: dict[str, Any], name: str, check: Any, dropped: list[str]) -> Any:
    value = document.get(name)
    if value is None:
        return None
    checked = check(value)
    if checked is None and (not isinstance(value, float) or math.isfinite(value)):  # not finite: None, silently
        dropped.append(name)
    return checked


def _array(document: Any, name: str, dropped: list[str], prefix: str = "") -> list[Any] | None:
    value = document.get(name) if isinstance(document, dict) else None
    if value is None:
        return None
    if not isinstance(value, list):
        dropped.append(f"{prefix}{name}")
        return None
    if len(value) > _ARRAY_ITEMS:
        dropped.append(f"{prefix}{name} (more than {_ARRAY_ITEMS} items)")
        return None
    return value


def _curve(curve: Any, dropped: list[str]) -> dict[str, Any]:
    if curve is not None and not isinstance(curve, dict):
        dropped.append("curve")
        curve = None
    columns = _columns(curve or {}, "steps", ("mean", "lo", "hi"), dropped, prefix="curve.")
    if not columns["steps"]:
        return {"steps": [], "mean": [], "lo": None, "hi": None}
    if all(v is None for v in columns["mean"]):
        dropped.append("curve.mean")
        return {"steps": [], "mean": [], "lo": None, "hi": None}
    return columns


def _columns(
    document: dict[str, Any], key: str, names: tuple[str, ...], dropped: list[str], prefix: str = ""
) -> dict[str, Any]:
    """Columns of points: ``key`` holds integer steps (a point without one is left out), each of ``names`` numbers
    (None where not one). The first of ``names`` is needed; a later one that is missing or shorter becomes None. The
    points are sorted by step and thinned by the extremes of the first column."""
    steps = _array(document, key, dropped, prefix)
    columns = [_array(document, name, dropped, prefix) for name in names]
    first = columns[0]
    if steps is None or first is None:
        return {key: [], **{name: ([] if i == 0 else None) for i, name in enumerate(names)}}
    n = min(len(steps), len(first))
    if len(steps) != len(first):
        dropped.append(f"{prefix}{key} ({len(steps)} steps for {len(first)} values: the extra ones)")
    for i, column in enumerate(columns[1:], 1):
        if column is not None and len(column) < n:
            dropped.append(f"{prefix}{names[i]} ({len(column)} values for {n} steps)")
            columns[i] = None
    xs, values = _checked(steps[:n], [None if c is None else c[:n] for c in columns])
    if len(xs) < n:
        dropped.append(f"{prefix}{key} ({n - len(xs)} not integers)")
    order = np.argsort(xs, kind="stable")
    keep = order[extremes(values[0][order], CURVE_POINTS)]
    out: dict[str, Any] = {key: xs[keep].tolist()}
    for name, column in zip(names, values, strict=True):
        out[name] = None if column is None else [None if math.isnan(v) else v for v in column[keep].tolist()]
    return out


def _checked(steps: list[Any], columns: list[list[Any] | None]) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """The integer steps (int64) and, at their points, the columns' numbers (float64, NaN where not a finite one).

    Plain ints, floats and nulls, as a writer's arrays hold, go through numpy at once: checking a 300,000-point curve
    item by item takes seconds. Anything else is checked item by item."""
    if set(map(type, steps)) <= {int} and all(c is None or set(map(type, c)) <= _PLAIN for c in columns):
        try:
            xs = np.array(steps, dtype=np.int64)
            arrays = [None if c is None else np.array(c, dtype=np.float64) for c in columns]  # null: NaN
        except OverflowError:  # an int past int64 or the float range: item by item
            pass
        else:
            valid = np.abs(xs) <= _MAX_INTEGER
            for array in arrays:
                if array is not None:
                    array[~np.isfinite(array)] = np.nan
            return xs[valid], [None if a is None else a[valid] for a in arrays]
    kept = [(i, step) for i, step in enumerate(map(integer, steps)) if step is not None]
    xs = np.array([step for _, step in kept], dtype=np.int64)
    arrays = [None if c is None else np.array([_nan(number(c[i])) for i, _ in kept], dtype=np.float64) for c in columns]
    return xs, arrays


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
