"""NonfiniteCheck: a NaN or inf in the series (critical), reported at its own step, once per run of such values."""

from __future__ import annotations

import math

from curvecast.forecasting.anomalies.check import Check
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings

__all__ = ["NonfiniteCheck"]


class NonfiniteCheck(Check):
    """A non-finite value is critical: the run cannot recover from it. Reported once per run of such values."""

    kind = "nonfinite"
    STATE = ("in_run",)

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        super().__init__(level, settings)
        self.in_run = False  # the previous value was not finite either

    def update(self, step: int, value: float) -> list[Anomaly]:
        self.in_run = False
        return []

    def on_nonfinite(self, step: int, value: float) -> list[Anomaly]:
        was, self.in_run = self.in_run, True
        if was:
            return []
        series = self.level.series
        return [Anomaly(self.kind, step, "critical", message(series, step, value), series, math.inf, value)]


def message(series: str, step: int, value: float) -> str:
    return (
        f"{series} became {value} at step {step}. The run cannot recover from a non-finite value: stop, resume "
        "from the last checkpoint with finite values, and lower the LR or tighten gradient clipping "
        "(with fp16, an overflow is a common cause: try bf16)."
    )
