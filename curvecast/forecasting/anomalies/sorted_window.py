"""SortedWindow: a window of values kept sorted as values come and go, for its median and MAD without a sort.

The noise of a series is 1.4826 MAD of its last 128 accepted differences, refreshed every 4 accepted points: sorting
them, then sorting their deviations from the median, took 9-14 us a refresh, a tenth of the CPU of a scored loss
point. Kept sorted, a value goes in and the oldest out by bisection (about half a microsecond), the median is read
off the middle, and the median of the deviations is picked by bisection over the two sorted runs they form on either
side of the median. The values are exactly those of :func:`~curvecast.forecasting.anomalies.stats.sigma_of_diffs`:
the same floats are subtracted and picked (``c - x`` is ``abs(x - c)`` for ``x < c``: IEEE subtraction is symmetric).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable

from curvecast.forecasting.anomalies.stats import MAD_TO_SIGMA

__all__ = ["SortedWindow"]


class SortedWindow:
    """The values of a window (its owner's list, in arrival order) in sorted order, kept in step with it.

    Example:
        >>> from curvecast.forecasting.anomalies.stats import sigma_of_diffs
        >>> diffs = [0.3, -0.1, 0.2, -0.4, 0.1]
        >>> window = SortedWindow(diffs)
        >>> window.sigma() == sigma_of_diffs(diffs)
        True
        >>> window.add(0.5, dropped=0.3); diffs = diffs[1:] + [0.5]
        >>> window.sigma() == sigma_of_diffs(diffs)
        True
    """

    __slots__ = ("values",)

    def __init__(self, values: Iterable[float] = ()) -> None:
        self.values = sorted(values)

    def add(self, value: float, dropped: float | None = None) -> None:
        """``value`` joins the window; ``dropped``, a value of the window, leaves it (the oldest, past the cap)."""
        if dropped is not None:
            del self.values[bisect_left(self.values, dropped)]
        insort(self.values, value)

    def sigma(self) -> float | None:
        """``sigma_of_diffs`` of the window: ``1.4826 MAD / sqrt(2)``; None where that needs the values in arrival
        order (a MAD of 0 falls back to their mean absolute deviation, a sum in that order) or where they are not all
        finite (their deviations could be NaN, which no sorted order holds)."""
        s = self.values
        n = len(s)
        if n == 0 or not (math.isfinite(s[0]) and math.isfinite(s[-1])):
            return None
        centre = _middle(s[n // 2 - 1], s[n // 2], n)
        # The deviations form two rising runs: centre - s[split - 1 - j] for the values left of the centre, and
        # s[split + j] - centre for the rest.
        split = bisect_left(s, centre)

        def kth(i: int) -> float:
            """The i-th smallest deviation (from 0): bisect on how many of the i + 1 smallest lie left of the centre."""
            lo, hi = max(0, i + 1 - (n - split)), min(i + 1, split)
            while lo < hi:
                a = (lo + hi) // 2
                if centre - s[split - 1 - a] < s[split + i - a] - centre:
                    lo = a + 1
                else:
                    hi = a
            left = centre - s[split - lo] if lo > 0 else -math.inf
            right = s[split + i - lo] - centre if i - lo >= 0 else -math.inf
            return max(left, right)

        mad = kth(n // 2) if n % 2 else _middle(kth(n // 2 - 1), kth(n // 2), n)
        if mad == 0.0:
            return None
        return MAD_TO_SIGMA * mad / math.sqrt(2.0)


def _middle(low: float, high: float, n: int) -> float:
    """The median of a sorted list of ``n`` values from its middle two (``high`` alone for odd ``n``), as
    :func:`~curvecast.forecasting.anomalies.stats.median` computes it."""
    return high if n % 2 else 0.5 * (low + high)
