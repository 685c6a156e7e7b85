"""Progress: how far a series has come, so that a rise is judged against the progress it undoes.

A loss that fell from 2.0 to 0.001 and wobbles back to 0.0024 has risen 2.4-fold, yet it has given back less than a
thousandth of what it gained: no divergence. And while a loss still falls fast (the early transient) its first
bumps are the optimizer settling, not a climb. The :class:`~curvecast.forecasting.anomalies.level.SeriesLevel` keeps
one :class:`Progress`; the divergence rules and the spike check read it. Progress reads the level through
:class:`ScoredSeries`, the few members it needs, so that this module does not import the level's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from curvecast.forecasting.anomalies.state import Stateful
from curvecast.forecasting.anomalies.stats import push

__all__ = [
    "SHORT",
    "TRANSIENT_DROP",
    "TRANSIENT_GIVEN_BACK",
    "TRANSIENT_POINTS",
    "Progress",
    "ScoredSeries",
    "best_candidate",
    "short_level",
]

SHORT = 3  # points in the short level whose running extremes are the start and the best (one outlier cannot set them)
# The early transient: the best short level fell by at least TRANSIENT_DROP (relative) over the last TRANSIENT_POINTS
# points. The healthy live runs' first bumps and climbs came while their best still fell more than 10% per 16 points;
# injected divergences (50-80% into a run) start where it falls far less. Leaving one group out
# (benchmarks/false_alarms.py --cv) the held-out figures are the same for any value from 0.02 to 0.2.
TRANSIENT_POINTS = 16
TRANSIENT_DROP = 0.10
# In the early transient a divergence alarm needs the level to give back at least half the progress made: large, as
# the early blow-ups of the labelled curves are (2.57 -> 7.07 after a fall from 6.9: 103%), where the first bumps and
# climbs of healthy runs give back a few percent of their fall.
TRANSIENT_GIVEN_BACK = 0.5


class ScoredSeries(Protocol):
    """What :class:`Progress` reads of its series (a :class:`~curvecast.forecasting.anomalies.level.SeriesLevel`)."""

    mode: str  # "min" or "max"
    n: int  # finite points seen
    sign: float  # 1 for "min", -1 for "max": the scoring scale is sign-flipped so that higher is worse
    recent: list[float]  # the last points on the scoring scale

    def rise(self, ratio: float, y: float) -> float:
        """How far above ``y`` lies ``ratio`` times its value, on the scoring scale."""
        ...

    def value_of(self, y: float) -> float:
        """The value of the series at ``y`` on the scoring scale."""
        ...

    def recent_median(self, points: int) -> float:
        """The median of the last ``points`` points (fewer when fewer are kept)."""
        ...


class Progress(Stateful):
    """The best short level (median of 3 points) of the series, the worst short level before it (where its descent
    started), and whether the best still falls fast (the early transient).

    Values are compared on the raw scale of "badness" (the value for ``mode="min"``, minus the value for
    ``mode="max"``): progress is ``bad(start) - bad(best)``, and a level ``y`` gives back
    ``(bad(y) - bad(best)) / progress`` of it. A series that made no progress gives back an infinite fraction with any
    rise, so a rise from the very start is judged by the other conditions alone. A scheduled LR rise measures the
    transient afresh and keeps the progress made.
    """

    STATE = ("best", "worst", "start", "bests")

    def __init__(self, level: ScoredSeries) -> None:
        self.level = level
        self.best, self.worst, self.start = math.inf, -math.inf, -math.inf
        self.bests: list[float] = []  # the best short level after each of the last TRANSIENT_POINTS + 1 points

    def on_lr_rise(self) -> None:
        """A scheduled LR rise (a warm restart): the loss may climb and fall anew, a transient measured afresh. The
        progress the run made stays the yardstick: forgotten, a run near its floor had made none since the restart,
        and any wobble of its near-zero loss gave back "all" of it (a ResNet and an MLP under
        CosineAnnealingWarmRestarts were warned of a climb 0.0007 -> 0.0034 after a fall from 2.4: 0.1% of the
        progress)."""
        self.bests = []

    def update(self) -> None:
        """Take the latest point (the level has it already)."""
        short = short_level(self.level)
        if len(self.level.recent) >= SHORT:
            # The start of the descent is a full median of 3: a sparse curve's first evaluation (the untrained model,
            # 32 where the run then sits near 1) would make any later blow-up look small against the progress made.
            self.worst = max(self.worst, short)
        candidate = best_candidate(self.level)
        if candidate is not None and candidate < self.best:
            self.best, self.start = candidate, self.worst  # the descent to this best started at the worst level before
        push(self.bests, self.best, TRANSIENT_POINTS + 1)

    def carry_over(self, old: Progress, convert: Callable[[float], float]) -> None:
        """The series switched scale (``convert`` takes a level of ``old`` to this one's): its progress stays."""
        self.best, self.worst, self.start = convert(old.best), convert(old.worst), convert(old.start)
        self.bests = [convert(b) for b in old.bests]

    @property
    def made(self) -> bool:
        """Whether the series has made progress: its best is better than where its descent started."""
        return math.isfinite(self.best) and self._bad(self.start) > self._bad(self.best)

    def given_back(self, y: float) -> float:
        """The fraction of the progress made that the level ``y`` (scoring scale) gives back (inf without progress)."""
        if not math.isfinite(self.best):
            return math.inf
        made = self._bad(self.start) - self._bad(self.best)
        lost = self._bad(y) - self._bad(self.best)
        if made > 0.0:
            return lost / made
        # No progress yet. A loss that climbs from its first value is the classic picture of an LR far too high; a
        # score (accuracy, reward) that has not improved yet has nothing to give back: its first falls are an RL
        # agent exploring or the noise of the first evaluations (the loss watched beside it catches a blow-up).
        return math.inf if self.level.mode == "min" else 0.0

    def needed(self, fraction: float) -> float:
        """The fraction of the progress a divergence alarm must see given back: ``fraction``, and in the early
        transient at least ``TRANSIENT_GIVEN_BACK`` (its first bumps and climbs are the optimizer settling)."""
        return max(fraction, TRANSIENT_GIVEN_BACK) if self.falling_fast else fraction

    @property
    def falling_fast(self) -> bool:
        """In the early transient: the best fell by ``TRANSIENT_DROP`` or more over the last ``TRANSIENT_POINTS``."""
        if len(self.bests) <= TRANSIENT_POINTS:
            return True  # the first points of a run (or since an LR rise): the transient has not been measured yet
        then, now = self.bests[0], self.bests[-1]
        return then - now >= self.level.rise(1.0 + TRANSIENT_DROP, now)

    def _bad(self, y: float) -> float:
        """Badness on the raw scale: the value for a loss, minus it for a score (increasing in ``y`` either way)."""
        return self.level.sign * self.level.value_of(y)


def short_level(level: ScoredSeries) -> float:
    """The median of the last 3 points; of the first two, the worse (a single low point cannot set a best level)."""
    recent = level.recent
    return max(recent[-SHORT:]) if len(recent) < SHORT else level.recent_median(SHORT)


def best_candidate(level: ScoredSeries) -> float | None:
    """The short level as a candidate best level, or None while it is no level yet.

    The first point of a series may be its best (the untrained model's loss, before a blow-up of the next evaluation).
    After a scheduled LR rise emptied the recent points, the first points are single batches of a run well under way:
    one lucky batch (0.0058 where the loss sits near 0.2) would become the best a divergence is measured against. The
    best waits there for a full median of 3.
    """
    recent = level.recent
    if len(recent) < SHORT and len(recent) < level.n:
        return None
    return short_level(level)
