"""Anomaly: one stability event found in a metric series (what, where, how bad, what to try)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from curvecast.series import TRAIN_LOSS

__all__ = ["KINDS", "SEVERITIES", "Anomaly"]

# Every kind an Anomaly may carry: the kinds of the detector's checks, and the monitor's ``instability_risk``.
KINDS = ("spike", "divergence", "nonfinite", "plateau", "slowdown", "instability_risk")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Anomaly:
    """One stability event, reported once when it is first seen (escalations are reported again).

    Attributes:
        kind: one of ``"spike"``, ``"divergence"``, ``"nonfinite"``, ``"plateau"``, ``"slowdown"``,
            ``"instability_risk"``.
        step: the optimizer step at which the event was detected.
        severity: ``"info"``, ``"warning"`` or ``"critical"``. Only a non-finite value and a
            confirmed divergence are critical: they are the events worth stopping a run for.
        message: what happened, when, and what to try, in one or two sentences.
        series: the name of the watched series, e.g. ``"loss"``, ``"grad_norm"``, ``"throughput"``.
        score: the evidence behind the event: a robust z-score for spikes, the ratio to the best
            level for divergence, the ratio to the baseline for slowdowns, the number of
            precursors for ``instability_risk``; NaN where none applies.
        value: the value of the series at ``step`` (NaN or inf for ``nonfinite``).

    Example:
        >>> a = Anomaly("spike", 120, "info", "loss spiked at step 120", score=9.5, value=3.2)
        >>> a.kind, a.step, a.series
        ('spike', 120, 'loss')
    """

    kind: str
    step: int
    severity: str
    message: str
    series: str = TRAIN_LOSS
    score: float = math.nan
    value: float = math.nan

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Expected `kind` to be one of {KINDS}, but got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Expected `severity` to be one of {SEVERITIES}, but got {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        """The event as plain Python types (for JSON, loggers and checkpoints)."""
        return asdict(self)
