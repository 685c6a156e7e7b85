"""A loss whose objective changes on purpose: its climb is a note naming the logged weight that moved over it.

A VAE's KL weight warming up from 0 to 1 (``beta``, ``kl_weight``), a penalty's weight ramped in: the loss it weights
climbs while the model learns well (a tiny VAE's ``recon + beta * kl``: 5.4 at its lowest, 9 when beta reached 1), and
the advice a climb gets (resume with a lower LR) is wrong for it. Where a weight of a term the module logs
(``metric_direction.names_a_coefficient``) moved by at least ``MOVED`` of its size over the span of a climb (from where
the series stood lowest before it, :func:`climb_start`, to the anomaly), the climb's warning (a divergence or an
instability warning) becomes a note naming the weight and its values, and a plateau loses its advice to raise the LR.
Evidence, not a name: a weight logged but flat over the climb (a warm-up long over) explains nothing, nor does one
whose move is too small for the climb (a loss ``rest + w * term`` rises at most ``w1 / w0`` times as its weight goes
``w0 -> w1``, its rest and term held), and the warning stands. A spike (one step) is no weight's doing, and a
critical divergence or a non-finite value stays what it is: no change of objective excuses a blow-up, and early
stopping still stops on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from curvecast.forecasting.anomalies.auxiliary import as_note, facts
from curvecast.forecasting.anomalies.event import Anomaly

__all__ = [
    "JUDGED_KINDS",
    "MOVED",
    "as_objective_change",
    "climb_start",
    "is_objective_change",
    "moved_coefficient",
    "objective_change_note",
]

JUDGED_KINDS = ("divergence", "instability_risk", "plateau")  # what a weight moving slowly can explain
# A weight moved when its value changed by a tenth of its larger magnitude over the climb: a KL warm-up moves by all
# of it (0 -> 0.4 over a 30-step climb of a 200-step ramp), where a constant weight, or one at the last percent of its
# ramp, does not move at all.
MOVED = 0.1
_LEVEL = 7  # points of the level whose lowest marks the climb's start (the sustained-rise rule's level)
_LOOKBACK = 48  # levels before the anomaly searched for it (the sustained-rise rule's running best)
_SHORT = 3  # points of the level at the anomaly (the blow-up rules' short level)

Points = tuple[np.ndarray, np.ndarray]  # steps and values of one series
_SAID = ", a weight of its objective, which "  # in every note this module writes (is_objective_change reads it)


def climb_start(steps: np.ndarray, values: np.ndarray, step: int) -> tuple[int, float]:
    """Where a climb found at ``step`` started, and its level there: the lowest median of 7 points over the 48 levels
    up to ``step`` (at the last step of its points: a late start keeps the span short). ``step`` and nan when the
    series has too few finite points there."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    keep = (steps <= step) & np.isfinite(values)
    steps, values = steps[keep][-(_LOOKBACK + _LEVEL - 1) :], values[keep][-(_LOOKBACK + _LEVEL - 1) :]
    if len(values) < _LEVEL:
        return int(step), math.nan
    levels = np.median(np.lib.stride_tricks.sliding_window_view(values, _LEVEL), axis=1)
    low = int(np.argmin(levels))
    return int(steps[_LEVEL - 1 + low]), float(levels[low])


def _rise(steps: np.ndarray, values: np.ndarray, step: int, point: float = math.nan) -> tuple[int, float]:
    """Where the climb found at ``step`` started (:func:`climb_start`) and how many times its level there the series
    stands at ``step``: the median of its last 3 points, or ``point`` where that is finite and higher (a loss and
    gradient-norm co-spike at a blow-up's first step, 137 against a level of 7.7, left the median at 1.4x the
    climb's start, which a KL weight's move explained); nan where no ratio tells (a level at or below 0)."""
    start, low = climb_start(steps, values, step)
    finite = np.asarray(values, dtype=np.float64)[(np.asarray(steps) <= step) & np.isfinite(values)]
    if not low > 0.0 or not len(finite):
        return start, math.nan
    level = float(np.median(finite[-_SHORT:]))
    return start, (max(level, point) if math.isfinite(point) else level) / low


def _value(steps: np.ndarray, values: np.ndarray, step: int, after: bool) -> float:
    """The finite value logged at or before ``step`` (the first one when none is), or with ``after`` at or after it
    (the last one when none is); nan when there is none."""
    keep = np.isfinite(values)
    steps, values = np.asarray(steps)[keep], np.asarray(values, dtype=np.float64)[keep]
    if not len(values):
        return math.nan
    if after:
        at = int(np.searchsorted(steps, step, side="left"))
        return float(values[min(at, len(values) - 1)])
    at = int(np.searchsorted(steps, step, side="right")) - 1
    return float(values[max(at, 0)])


def moved_coefficient(
    anomaly: Anomaly, series: Points, coefficients: Mapping[str, Points]
) -> tuple[str, float, float] | None:
    """The first of ``coefficients`` (name to steps and values) that moved by ``MOVED`` over the climb of
    ``anomaly`` in ``series`` (the steps and values of the series it was found in) and whose move explains the climb's
    size, with its value where the climb started and where it was found (the first logged at or after its step: the
    live value of that step's flush). A loss ``rest + w * term`` whose rest and term hold rises at most ``w1 / w0``
    times when its weight rises from ``w0`` to ``w1``: a loss that rose more (a blow-up's 75-fold jump while ``beta``
    went 0.23 -> 0.51) climbs for another reason, and a weight that moved less than a tenth explains nothing."""
    # An instability warning's precursors are points, not a level: its own value counts.
    point = anomaly.value if anomaly.kind == "instability_risk" else math.nan
    start, rise = _rise(*series, anomaly.step, point)
    if not rise > 0.0:
        return None  # a loss at or below zero: no ratio to weigh the weight's move against
    for name, (steps, values) in coefficients.items():
        before = _value(steps, values, start, after=False)
        now = _value(steps, values, anomaly.step, after=True)
        move, smaller = abs(now - before), min(abs(now), abs(before))
        if move >= MOVED * max(abs(before), abs(now)) > 0.0 and (rise - 1.0) * smaller <= move:  # nan: False
            return name, before, now
    return None


def objective_change_note(name: str, before: float, now: float, span: str = "climb") -> str:
    """Said of an alarm on a loss over whose ``span`` (a climb, a plateau) ``name``, a weight of a term of its
    objective, moved from ``before`` to ``now``."""
    went = "rose" if now > before else "fell"
    return (
        f" The run logs `{name}`{_SAID}{went} from {before:.4g} to {now:.4g} over this "
        f"{span}: the objective itself changed (a warm-up of a term's weight raises the loss), so this alone is no "
        "sign of an unstable run."
    )


def as_objective_change(anomaly: Anomaly, series: Points, coefficients: Mapping[str, Points]) -> Anomaly:
    """``anomaly`` as a note naming the logged weight that moved over its climb (see the module docstring), or as
    it is: a spike, a non-finite value, a critical divergence, or no weight that moved."""
    if anomaly.kind not in JUDGED_KINDS or anomaly.severity == "critical" or not coefficients:
        return anomaly
    moved = moved_coefficient(anomaly, series, coefficients)
    if moved is None:
        return anomaly
    if anomaly.kind == "plateau":  # a note already: its advice to raise the LR goes, and why comes in its place
        return replace(anomaly, message=facts(anomaly.message) + objective_change_note(*moved, span="plateau"))
    return as_note(anomaly, objective_change_note(*moved))


def is_objective_change(anomaly: Anomaly) -> bool:
    """Whether ``anomaly`` is a note :func:`as_objective_change` made (a plateau there wants no advice on the LR)."""
    return _SAID in anomaly.message
