"""Checks of the numbers and flags the public API takes: one real number, an array of them, or a bool, named in any
error.

numpy converts almost anything to float64 (``"1.5"``, ``True``, the real part of ``1+2j``, with only a warning) and
fails on the rest with messages that name no argument; these checks take real numbers alone and say which argument held
something else. An integer past the float range (``10**400``) is +-inf, as float arithmetic has it, not an error.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_flag", "check_value", "real_array"]


def check_value(value: object, name: str = "value") -> float:
    """``value`` as a float, after checking it is a real number (NaN and inf are allowed; an integer past the float
    range, such as ``10**400``, is +-inf).

    >>> check_value(2), check_value(10**400), check_value(-(10**400))
    (2.0, inf, -inf)
    """
    if type(value) is float:
        return value  # the common case, without the abstract-class checks below (twice per point scored)
    if isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a real number, but got {value!r} (bool)")
    if not isinstance(value, numbers.Real):
        # 0-d arrays and tensors moved to the host expose __float__; strings and None do not count.
        if isinstance(value, (str, bytes)) or value is None or not hasattr(value, "__float__"):
            raise TypeError(f"Expected `{name}` to be a real number, but got {value!r} ({type(value).__name__})")
        try:
            return _float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"Expected `{name}` to be a real number, but got {value!r} ({type(value).__name__})"
            ) from None
    return _float(value)


def real_array(x: object, name: str) -> np.ndarray:
    """``x`` as a float64 array, after checking it holds real numbers (bools count as 0 and 1; the masked entries of a
    masked array are NaN).

    >>> real_array([1, 2.5, 10**400], "steps")
    array([1. , 2.5, inf])
    """
    if isinstance(x, np.ma.MaskedArray):
        x = x.astype(np.float64).filled(np.nan) if x.dtype.kind in "biuf" else x.filled()
    try:
        array = np.asarray(x)
    except ValueError:  # rows of different lengths
        raise ValueError(f"Expected `{name}` to be an array of numbers, but its rows differ in length") from None
    if array.dtype == object:
        # Python ints past the float range, or a list mixing types: each element must be a real number itself.
        flat = [check_value(item, name) for item in array.ravel().tolist()]
        return np.asarray(flat, dtype=np.float64).reshape(array.shape)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Expected `{name}` to hold real numbers, but got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _float(value: object) -> float:
    """``float(value)``, with a number too large for a float (a Python int) as +-inf instead of an OverflowError."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def check_flag(value: object, name: str) -> bool:
    """``value`` as a bool, after checking it is one (numpy's too): ``"no"`` would have been truthy, and on."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Expected `{name}` to be True or False, but got {value!r} ({type(value).__name__})")
    return bool(value)
