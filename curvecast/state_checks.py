"""Checks of a saved state's fields, for the ``load_state_dict`` methods: each returns the value as the part holds it,
or raises ``TypeError`` (the wrong type) or ``ValueError`` (out of range) naming the field.

A damaged checkpoint is then refused field by field, before anything is assigned, instead of loading a value that
fails later (``int(inf)``) or quietly switches a detector off (a count that is a string, a noise that is None).
Pure Python: the forecasting package uses them too.

>>> checked_whole("`n`", 3.0, low=0)
3
>>> checked_whole("`n`", float("inf"))
Traceback (most recent call last):
...
ValueError: Expected `n` to be a whole number, but got float inf
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MAX_WHOLE",
    "checked_bool",
    "checked_mapping",
    "checked_real",
    "checked_reals",
    "checked_str",
    "checked_whole",
    "checked_wholes",
    "require_keys",
]

MAX_WHOLE = 2**53  # counts and steps stay far below; above it a float no longer holds every whole number exactly


def describe(value: Any) -> str:
    """``"str 'x'"``: the type and a short repr of a value, for error messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def checked_mapping(field: str, value: Any) -> dict[str, Any]:
    """``value`` when it is a dict (a saved state or a part of one)."""
    if not isinstance(value, dict):
        raise TypeError(f"Expected {field} to be a dict, but got {describe(value)}")
    return value


def require_keys(field: str, state: Mapping[str, Any], keys: Iterable[str]) -> None:
    """A ``KeyError`` listing the keys of ``keys`` that ``state`` lacks."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise KeyError(f"{field} lacks the keys {missing}")


def checked_bool(field: str, value: Any) -> bool:
    """``value`` when it is a bool (1 and 0 are not)."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected {field} to be a bool, but got {describe(value)}")
    return value


def checked_str(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"Expected {field} to be a str, but got {describe(value)}")
    return value


def checked_whole(field: str, value: Any, *, low: int = -MAX_WHOLE, high: int = MAX_WHOLE) -> int:
    """``value`` as an int: a whole number (an integral float is taken) in ``[low, high]``; not a bool, not inf."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Expected {field} to be a whole number, but got {describe(value)}")
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"Expected {field} to be a whole number, but got {describe(value)}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"Expected {field} to lie in [{low}, {high}], but got {number}")
    return number


def checked_real(
    field: str, value: Any, *, low: float = -math.inf, high: float = math.inf, allow: tuple[float, ...] = ()
) -> float:
    """``value`` as a float: a finite real number in ``[low, high]``, or one of the special values in ``allow``
    (``math.nan``, ``math.inf``, ``-math.inf``) where the field may hold it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Expected {field} to be a real number, but got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int past the float range
        raise ValueError(f"Expected {field} to be a finite real number, but got {describe(value)}") from None
    if math.isfinite(number):
        if not low <= number <= high:
            raise ValueError(f"Expected {field} to lie in [{low}, {high}], but got {number!r}")
        return number
    if (math.isnan(number) and any(math.isnan(a) for a in allow)) or number in allow:
        return number
    also = "".join(f" or {a!r}" for a in allow)
    raise ValueError(f"Expected {field} to be a finite real number{also}, but got {number!r}")


def checked_reals(field: str, value: Any, *, max_len: int | None = None, **limits: Any) -> list[float]:
    """``value`` as a new list of floats, each as :func:`checked_real` takes it (``limits``: its keywords)."""
    items = _sequence(field, value, max_len)
    if not limits and all(type(x) is float and math.isfinite(x) for x in items):  # the usual case, without a call each
        return list(items)
    return [checked_real(_item(field, i), x, **limits) for i, x in enumerate(items)]


def checked_wholes(field: str, value: Any, *, max_len: int | None = None, **limits: Any) -> list[int]:
    """``value`` as a new list of ints, each as :func:`checked_whole` takes it (``limits``: its keywords)."""
    return [checked_whole(_item(field, i), x, **limits) for i, x in enumerate(_sequence(field, value, max_len))]


def _item(field: str, i: int) -> str:
    """The name of item ``i`` of ``field``, inside its backquotes when it has them."""
    return f"{field[:-1]}[{i}]`" if field.endswith("`") else f"{field}[{i}]"


def _sequence(field: str, value: Any, max_len: int | None) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"Expected {field} to be a list, but got {describe(value)}")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"Expected {field} to hold at most {max_len} values, but got {len(value)}")
    return value
