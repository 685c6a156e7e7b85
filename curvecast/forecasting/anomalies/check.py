"""Check: the base of the detector's checks, one per anomaly kind, each owning its own state."""

from __future__ import annotations

from typing import ClassVar

from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.state import Stateful

__all__ = ["Check"]


class Check(Stateful):
    """One anomaly kind of one series.

    The detector calls, for every value, in this order: :meth:`on_lr_rise` when the planned LR rose since the
    previous step, then :meth:`update` once the finite value is in the shared :class:`SeriesLevel` (or
    :meth:`on_nonfinite` for NaN and inf, which never reach it). A check reads the level and never writes to it (its
    noise refreshes itself when asked for); its own state is the attributes named in ``STATE`` (see
    :class:`Stateful`), and every update must be O(1).

    Args:
        level: the shared state of the series.
        settings: the detector's thresholds; a check copies those it uses.
    """

    kind: ClassVar[str]  # the kind of the events it reports: one of event.KINDS

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        self.level = level

    def update(self, step: int, value: float) -> list[Anomaly]:
        """Check the latest finite value (the level has it already); return the events it triggers."""
        raise NotImplementedError

    def on_nonfinite(self, step: int, value: float) -> list[Anomaly]:
        """A NaN or inf arrived (the level never sees it); the default ignores it."""
        return []

    def on_lr_rise(self) -> None:
        """A scheduled LR rise: the series may climb for a while. The default keeps the state as it is."""

    def carry_over(self, old: Check) -> None:
        """The series switched to the raw scale (a value <= 0 came) and this check starts afresh on it: take what
        stays true of the series from ``old``, the same check on the log scale. The default takes nothing."""
