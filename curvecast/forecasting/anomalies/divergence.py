"""DivergenceCheck: the series climbing away from its best: a jump, a sustained rise, a drift, a confirmed blow-up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curvecast.forecasting.anomalies.blowup import BlowUpRule
from curvecast.forecasting.anomalies.check import Check
from curvecast.forecasting.anomalies.climb import DriftRule, SustainedRiseRule
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.state import load_parts

__all__ = ["DivergenceCheck"]


class DivergenceCheck(Check):
    """Divergence, from four rules run in this order on every point (each owns its state):

    - **jump** (warning, :class:`BlowUpRule`): on a sparse series with too few points to know the noise, the median
      of 3 points ``divergence_ratio`` times the best level, out of the first points' spread;
    - **confirmed** (critical, :class:`BlowUpRule`): ``confirm_points`` consecutive values over ``confirm_steps``
      steps at ``divergence_ratio`` times the best level, their median several noise units above it, the best one
      the series held for ``confirm_steps`` steps (a low it only touched is no yardstick for a stop);
    - **sustained rise** (warning, :class:`SustainedRiseRule`): the median of 7 points stands above its recent best
      by a margin scaled to the level's own noise and the run's past wander;
    - **drift** (warning, :class:`DriftRule`): a one-sided CUSUM of z against the median of the last 32 points.

    Each also needs the level to give back part of the progress the series made, a large part in the early
    transient (the level's :class:`~curvecast.forecasting.anomalies.progress.Progress`). The warnings (jump aside)
    share one episode: after one fires, or the blow-up is confirmed, neither fires again until the level is back near
    where it was. A scheduled LR rise resets the best levels and the CUSUM.

    Attributes:
        blowup, rise, drift: the rules (``drift.creeping()`` is the early sign the instability monitor reads).
    """

    kind = "divergence"

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        super().__init__(level, settings)
        self.blowup = BlowUpRule(level, settings)
        self.rise = SustainedRiseRule(level)
        self.drift = DriftRule(level, settings)

    def _rules(self) -> dict[str, BlowUpRule | SustainedRiseRule | DriftRule]:
        return {"blowup": self.blowup, "rise": self.rise, "drift": self.drift}

    def on_lr_rise(self) -> None:
        for rule in self._rules().values():
            rule.on_lr_rise()

    def carry_over(self, old: Check) -> None:
        if isinstance(old, DivergenceCheck):
            self.blowup.carry_over(old.blowup)

    def update(self, step: int, value: float) -> list[Anomaly]:
        progress = self.level.progress
        events = self.blowup.update(step, value, progress)
        if events and events[-1].severity == "critical":  # a confirmed blow-up (it comes last): no climb warnings
            self.drift.disarm(clear_sum=False)
        rising = self.rise.update(step, value, progress)
        if rising:
            self.drift.disarm(clear_sum=True)
        drifting = self.drift.update(step, value, progress)
        if drifting:
            self.rise.disarm()
        return events + rising + drifting

    def state_dict(self) -> dict[str, Any]:
        return {name: rule.state_dict() for name, rule in self._rules().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        load_parts(self._rules(), state, "divergence check")
