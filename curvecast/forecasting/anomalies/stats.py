"""Small robust statistics on short Python lists, and the checks of the values fed to the streaming detectors.

Pure Python on purpose: the windows hold 3-128 values, where ``sorted`` costs a few microseconds and
``np.median`` costs more in array conversion than in work; plain lists also go into checkpoints as is.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from curvecast.forecasting.real_values import check_value

__all__ = [
    "MAD_TO_SIGMA", "MEDIAN_NOISE", "check_step", "check_value", "median", "push", "ratio", "scatter", "sigma_of_diffs",
]  # fmt: skip

MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this is its standard deviation
MEAN_AD_TO_SIGMA = 1.2533  # the mean absolute deviation of a normal sample times this (sqrt(pi / 2)) is its deviation
# The noise of the median of n points is MEDIAN_NOISE / sqrt(n) times one point's (normal noise; sqrt(pi / 2)).
MEDIAN_NOISE = 1.2533


def median(xs: Sequence[float]) -> float:
    """The median of a non-empty list.

    >>> median([3.0, 1.0, 2.0]), median([4.0, 1.0, 2.0, 3.0])
    (2.0, 2.5)
    """
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def ratio(value: float, base: float) -> float:
    """``value / base`` for a positive ``base``; inf otherwise (a loss can reach 0 or go below it: no ratio then).

    >>> ratio(3.0, 2.0), ratio(1.0, 0.0), ratio(1.0, -2.0)
    (1.5, inf, inf)
    """
    return value / base if base > 0.0 else math.inf


def times(value: float, base: float, what: str) -> str:
    """``"2.40x the expected (0.5)"``, or ``"up from the expected (0)"`` when no ratio exists (``base`` <= 0).

    >>> times(1.2, 0.5, "the expected"), times(1e300, 0.37, "the expected")
    ('2.40x the expected (0.5)', '2.7e+300x the expected (0.37)')
    """
    r = ratio(value, base)
    if not math.isfinite(r):
        return f"up from {what} ({base:.4g})"
    # Fixed decimals past a thousand would print every digit of a value near the float limit (300 of them).
    return f"{r:.2f}x {what} ({base:.4g})" if r < 1000.0 else f"{r:.3g}x {what} ({base:.4g})"


def sigma_of_diffs(diffs: Sequence[float], centre: float | None = None) -> float:
    """Robust per-point noise from first differences: 1.4826 * MAD(diffs) / sqrt(2).

    The MAD is taken around the median difference, so a steady trend does not inflate it (the
    MAD of the levels themselves would); dividing by sqrt(2) turns the noise of a difference of two
    points into the noise of one point. ``centre``: ``median(diffs)`` when the caller has it already.

    >>> round(sigma_of_diffs([0.1, -0.1, 0.1, -0.1]), 4)
    0.1048
    """
    if centre is None:
        centre = median(diffs)
    deviations = [abs(d - centre) for d in diffs]
    mad = median(deviations)
    if mad == 0.0:
        # Quantised values (a batch accuracy of 0 or 1, a loss printed to 4 digits) can leave most differences equal:
        # their MAD is 0, and any step would be infinitely many noise units. The mean absolute deviation sees them.
        return MEAN_AD_TO_SIGMA * sum(deviations) / len(deviations) / math.sqrt(2.0)
    return MAD_TO_SIGMA * mad / math.sqrt(2.0)


def scatter(points: Sequence[float]) -> float:
    """The point-to-point scatter of a few points: the spread of their first differences about their mean, over sqrt 2,
    the two largest left out (one spike makes two); 0.0 with fewer than 3 differences left.

    Not robust otherwise, on purpose: the MAD of :func:`sigma_of_diffs` sees the bulk of the differences only, and a
    policy-gradient surrogate whose batches sit near 0 save a few large ones every several steps has a MAD of 0.002
    where its points scatter by 0.05: those few batches are its own noise, and a median of 5 lifted by them no climb.

    >>> round(scatter([0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0]), 4)
    0.0707
    """
    diffs = [b - a for a, b in zip(points, points[1:], strict=False)]
    if len(diffs) < 5:
        return 0.0
    mean = sum(diffs) / len(diffs)
    squares = sorted((d - mean) ** 2 for d in diffs)[:-2]
    return math.sqrt(sum(squares) / len(squares) / 2.0)


def push(buf: list[float], x: float, cap: int) -> None:
    """Append ``x`` to ``buf`` and drop the oldest values beyond ``cap`` (a list-backed ring)."""
    buf.append(x)
    if len(buf) > cap:
        del buf[: len(buf) - cap]  # O(cap) memmove of at most a few hundred pointers


def check_step(step: object, last: int | None) -> int:
    """``step`` as an int, after checking it is an integer that increases."""
    if type(step) is int and (last is None or step > last):
        return step  # the common case, without the abstract-class checks below (twice per point scored)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        if isinstance(step, numbers.Real) and not isinstance(step, bool) and float(step).is_integer():
            step = int(step)
        else:
            raise TypeError(f"Expected `step` to be an integer, but got {step!r} ({type(step).__name__})")
    step = int(step)
    if last is not None and step <= last:
        raise ValueError(f"`step` must increase, but step {step} follows {last}")
    return step
