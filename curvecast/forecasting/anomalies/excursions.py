"""The latest large departures of a series from its baseline, either way, to tell its own noise from a spike that
stands clear of it.

A REINFORCE surrogate whose policy has turned sharp sits within 0.002 of zero save an exploring batch every 5-150
steps, 0.1-0.3 above or below it. Its noise (the MAD of its differences) sees the bulk only, so each batch above is
an outlier 10-90 noise units high, and near zero no ratio to the baseline tells it from a real spike: 6-49 spike
warnings a run over 12 seeds of 2,000 steps (tests/test_policy_gradient.py). Those batches are the series' own noise:
it has made departures of that size before, and keeps making them. A spike is now measured against them.
"""

from __future__ import annotations

__all__ = ["KEPT", "MEMORY_POINTS", "RECORD_NOISES", "SIZE_FRACTION", "like", "note"]

# A departure of this many noise units from the baseline, either way, is kept: below the spike bar (7), so that the
# departures a spike is compared with are on record whichever way they went.
RECORD_NOISES = 3.0
KEPT = 8  # departures kept (the largest of the latest: O(1) per point)
# Departures older than this many points are forgotten: the sharp policies' exploring batches came up to 145 points
# apart (seeds 0-5, counting both ways); lone spikes 220-640 points apart (a sharper policy, LR 1e-2) stay warnings.
MEMORY_POINTS = 256
# A departure at least this fraction of a spike's rise is one of the same size: a spike twice the size of every
# departure before it stands clear of them (a growing instability is still warned of).
SIZE_FRACTION = 0.5


def note(kept: list[float], n: int, size: float) -> None:
    """Keep a departure of ``size`` (from the baseline, on the scoring scale) at point ``n`` in ``kept``, a flat list
    ``[n, size, n, size, ...]`` (a checkpoint keeps plain lists of floats) of ``KEPT`` at most: when full, the oldest
    beyond ``MEMORY_POINTS`` go, else the smallest (a burst of small departures would push out the large ones a spike
    is compared with)."""
    kept += (float(n), size)
    if len(kept) <= 2 * KEPT:
        return
    stale = [i for i in range(0, len(kept), 2) if kept[i] < n - MEMORY_POINTS]
    drop = stale[0] if stale else min(range(0, len(kept), 2), key=lambda i: kept[i + 1])
    del kept[drop : drop + 2]


def like(kept: list[float], n: int, rise: float) -> int:
    """How many departures in ``kept`` (see :func:`note`) before point ``n``, and within ``MEMORY_POINTS`` of it, are
    at least ``SIZE_FRACTION`` of ``rise``.

    >>> kept = []
    >>> for n in (10, 30, 50): note(kept, n, 0.15)
    >>> like(kept, 60, 0.2), like(kept, 60, 0.4), like(kept, 400, 0.2)
    (3, 0, 0)
    """
    low = SIZE_FRACTION * rise
    return sum(1 for i in range(0, len(kept), 2) if n - MEMORY_POINTS <= kept[i] < n and kept[i + 1] >= low)
