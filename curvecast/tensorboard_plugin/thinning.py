"""A long curve thinned for the browser: per bucket of consecutive points, the lowest and the highest one.

Evenly spaced samples would step over a one-step spike; the extremes of each bucket keep it, and the first and last
points are always kept, so the curve still starts and ends where it did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["extremes"]


def extremes(values: Sequence[float | None] | np.ndarray, max_points: int) -> list[int]:
    """The indices of ``values`` to keep, increasing, at most ``max_points`` (at least 4) of them: all of them when
    they fit, else the first, the last, and the lowest and highest of each bucket in between (None and NaN count as
    no value; a bucket without one keeps its first index).

    Example:
        >>> values = [1.0] * 100
        >>> values[37] = 50.0
        >>> kept = extremes(values, 10)
        >>> len(kept) <= 10, 37 in kept, kept[0], kept[-1]
        (True, True, 0, 99)
    """
    if max_points < 4:
        raise ValueError(f"`max_points` must be at least 4, but got {max_points}")
    n = len(values)
    if n <= max_points:
        return list(range(n))
    if isinstance(values, np.ndarray):
        array = values.astype(np.float64, copy=False)
    else:
        array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(int)  # the interior 1..n-2, split evenly
    kept = {0, n - 1}
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        if stop <= start:
            continue
        bucket = array[start:stop]
        finite = np.isfinite(bucket)
        if not finite.any():
            kept.add(int(start))
            continue
        masked_low = np.where(finite, bucket, np.inf)
        masked_high = np.where(finite, bucket, -np.inf)
        kept.add(int(start + np.argmin(masked_low)))
        kept.add(int(start + np.argmax(masked_high)))
    return sorted(kept)
