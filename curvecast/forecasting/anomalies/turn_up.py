"""The loss-only precursor of an instability: the loss has turned back up from its recent best.

One of the precursors of :class:`~curvecast.forecasting.anomalies.instability.InstabilityMonitor` (the class says
when it holds); this module keeps its state and its test.
"""

from __future__ import annotations

import math
from typing import Any

from curvecast.forecasting.anomalies.level import MIN_DIFFS, SeriesLevel
from curvecast.forecasting.anomalies.stats import MAD_TO_SIGMA, median, push

__all__ = ["LOWS", "TurnUp", "curvature_noise", "robust_low"]

LOWS = 16  # log losses kept for the recent best of the turn-up precursor
_UP_RUN = 2  # consecutive points a turn-up must hold (one point above a smooth fall is a spike)
_UP_AFTER = 100  # steps from the first one before a turn-up counts (the first steps' loss bumps are normal)
# A turn-up must also stand this much above the largest swing the loss has shown before (a step against the direction
# of the one before it, as large as the smaller of the two): a loss logged every 50 steps from single batches swings
# 2-30x from point to point, so that its first points back up are its own noise, while a smooth evaluation curve that
# falls steadily has shown no swing, and a blow-up that stays up none either.
_UP_PAST_FACTOR = 1.25
# Before the loss detector knows the noise (8 differences), a turn-up needs this many points before it, whose second
# differences stand in for the noise (see curvature_noise).
_UP_PROXY_POINTS = 4


class TurnUp:
    """Whether the loss has turned back up from the lowest of its last ``LOWS`` points, point by point.

    Args:
        turn_up: the least rise above that low, relative.
        turn_up_z: the least rise in units of the kept points' noise (from their second differences).

    Attributes (the state a checkpoint keeps, under these names in the monitor's):
        lows: the last log losses (before the latest one).
        up_run: consecutive points the loss has stood clear above the low.
        up_armed: whether a new turn-up may be reported (it re-arms once the loss is back within half the margin).
        up_peak: the largest swing of the loss so far (log scale).
        last_move: the latest step of the log loss.
    """

    STATE = ("lows", "up_run", "up_armed", "up_peak", "last_move")

    def __init__(self, turn_up: float, turn_up_z: float) -> None:
        self.turn_up, self.turn_up_z = turn_up, turn_up_z
        self.lows: list[float] = []
        self.up_run, self.up_armed = 0, True
        self.up_peak = 0.0
        self.last_move = 0.0

    def update(self, loss: float | None, level: SeriesLevel, span: int) -> str | None:
        """Take the loss of a step (None: this step has none); return the precursor's reason when it holds.

        Args:
            level: the loss detector's level (its noise, its scale, whether an LR rise mutes it).
            span: steps from the first one the monitor saw to this one.
        """
        if loss is None or not math.isfinite(loss) or loss <= 0.0 or not level.log_scale:
            # A loss that went to 0 or below (the detector scores it on the raw scale from then on) has no ratio to
            # turn up by: its rises are the detector's to judge, on differences.
            self.up_run = 0
            return None
        y = math.log(loss)
        lows = self.lows
        watched = span >= _UP_AFTER and not level.after_lr_rise
        found = None
        if watched and len(lows) >= _UP_PROXY_POINTS:
            found = self._turn_up(loss, y, level)
        else:
            self.up_run = 0
        # The swings of the loss so far (taken after this point is judged, so that a rise under way never raises its
        # own bar): a step against the direction of the one before, as large as the smaller of the two.
        move = y - lows[-1] if lows else 0.0
        if watched and move * self.last_move < 0.0:
            self.up_peak = max(self.up_peak, min(abs(move), abs(self.last_move)))
        self.last_move = move
        push(lows, y, LOWS)
        return found

    def _turn_up(self, loss: float, y: float, level: SeriesLevel) -> str | None:
        lows = self.lows
        up = y - robust_low(lows)
        floor = math.log1p(self.turn_up)  # the least margin, whatever the noise
        if (up <= floor or up <= _UP_PAST_FACTOR * self.up_peak) and (self.up_armed or up < floor / 2):
            # The point cannot stand above the margin (it is below its floor, or within the largest swing seen), and
            # no re-arm waits on it (half the floor decides one as half the margin would): the noise (two sorts of
            # the second differences) is not needed.
            self.up_run = 0
            if up < floor / 2:
                self.up_armed = True
            return None
        known = len(level.diffs) >= MIN_DIFFS
        # The noise of the points kept, from their second differences: the trend of a sparse curve's steep fall, which
        # the detector's first differences take for noise, is left out.
        noise = curvature_noise(lows)
        # Once the detector knows the noise (a per-step loss, or a sparse curve past its first points), the lowest of
        # the points kept lies below their level by about sqrt(2 ln n) of that noise: the margin widens by it.
        bias = 1.0 + math.sqrt(2.0 * math.log(len(lows))) if known else 1.0
        margin = max(floor, self.turn_up_z * noise * bias)
        above = up > margin and up > _UP_PAST_FACTOR * self.up_peak and self._clear_on_raw_scale(loss, bias)
        self.up_run = self.up_run + 1 if above else 0
        if up < margin / 2:
            self.up_armed = True
        if not self.up_armed or self.up_run < _UP_RUN:
            return None
        self.up_armed = False
        best = math.exp(robust_low(lows))
        return f"loss turned up to {loss:.4g} from {best:.4g}, its best of the last {len(lows)} points"

    def _clear_on_raw_scale(self, loss: float, bias: float) -> bool:
        """The rise above the lowest of ``lows`` stands ``turn_up_z`` noise units clear on the raw scale too, the noise
        taken from the second differences of the values kept (with fewer than 8 of them, no test: True). Far from zero
        this is the log-scale test again; near zero (a Gaussian NLL on its way below it) a ratio means nothing, and the
        differences judge."""
        if len(self.lows) < MIN_DIFFS:
            return True
        raw = [math.exp(v) for v in self.lows]
        return loss - math.exp(robust_low(self.lows)) > self.turn_up_z * curvature_noise(raw) * bias

    def state_dict(self) -> dict[str, Any]:
        return {"lows": list(self.lows), "up_run": self.up_run, "up_armed": self.up_armed, "up_peak": self.up_peak,
                "last_move": self.last_move}  # fmt: skip


def robust_low(ys: list[float]) -> float:
    """The low a turn-up is measured from: the lowest of ``ys``, or the second lowest once ``MIN_DIFFS`` are kept, so
    one lucky batch is never the best the loss is said to have turned up from (a classifier's batch loss near 0.65,
    Adam 3e-3 and batch 32, had one batch of 0.43 and was warned "turned up to 0.76 from 0.43" two steps later)."""
    return min(ys) if len(ys) < MIN_DIFFS else sorted(ys)[1]  # 16 floats: sorted in C beats a loop in Python


def curvature_noise(ys: list[float]) -> float:
    """The per-point noise of a few points from their second differences, which leave out the trend: a steady fall has
    none, a single-batch loss logged every 50 steps much (robust and centred: a fall that slows has second differences
    of one sign, its curvature, which is no noise)."""
    second = [a - 2.0 * b + c for a, b, c in zip(ys, ys[1:], ys[2:], strict=False)]
    centre = median(second)
    return MAD_TO_SIGMA * median([abs(d - centre) for d in second]) / math.sqrt(6.0)
