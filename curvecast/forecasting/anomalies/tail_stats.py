"""TailStats: the medians and noise of the last few values of a window, each computed once while the window holds.

Several checks of a series read the same statistic of the same point: the median of its last 3 points (the short
level) five times, that of the last 5 twice, the median of the last 16 accepted differences (the spike baseline's
slope, then the centre of the noise of those 16 that the sustained-rise rule and the instability monitor both read).
Each ``sorted`` of a few floats costs about a microsecond with its call; a point of a loss asked for 16 of them. The
values are the very ones :func:`~curvecast.forecasting.anomalies.stats.median` and
:func:`~curvecast.forecasting.anomalies.stats.sigma_of_diffs` give on the same slice: only the repeats go.
"""

from __future__ import annotations

from curvecast.forecasting.anomalies.stats import median, scatter, sigma_of_diffs

__all__ = ["TailStats"]


class TailStats:
    """Statistics of the tails of one window (a list that its owner changes once per point at most).

    The owner calls :meth:`clear` whenever the window changes (a value pushed, the list replaced or restored): a
    statistic read before that would otherwise be stale. Never saved: it is rebuilt from the window on demand.

    Example:
        >>> window, stats = [3.0, 1.0, 2.0, 5.0], TailStats()
        >>> stats.median(window, 3), stats.median(window, 3), stats.median(window, 10)
        (2.0, 2.0, 2.5)
        >>> window.append(0.0); stats.clear(); stats.median(window, 3)
        2.0
    """

    __slots__ = ("_medians", "_noises", "_scatter")

    def __init__(self) -> None:
        self._medians: dict[int, float] = {}
        self._noises: dict[int, float] = {}
        self._scatter: float | None = None

    def clear(self) -> None:
        """The window changed: forget every statistic of it."""
        self._medians.clear()
        self._noises.clear()
        self._scatter = None

    def scatter(self, window: list[float]) -> float:
        """``scatter(window)``: the point-to-point scatter of the whole window."""
        if self._scatter is None:
            self._scatter = scatter(window)
        return self._scatter

    def median(self, window: list[float], points: int) -> float:
        """``median(window[-points:])`` (fewer points when the window holds fewer; it must hold one)."""
        value = self._medians.get(points)
        if value is None:
            value = self._medians[points] = median(window[-points:])
        return value

    def noise(self, window: list[float], points: int) -> float:
        """``sigma_of_diffs(window[-points:])`` for a window of first differences, its centre shared with
        :meth:`median`."""
        value = self._noises.get(points)
        if value is None:
            value = self._noises[points] = sigma_of_diffs(window[-points:], centre=self.median(window, points))
        return value
