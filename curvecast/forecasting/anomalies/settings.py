"""DetectorSettings: the thresholds of one :class:`~curvecast.forecasting.anomalies.AnomalyDetector`, checked once."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DetectorSettings"]


@dataclass(frozen=True)
class DetectorSettings:
    """The tunable thresholds every part of a detector reads from (configuration, not state: never saved).

    The defaults and the meaning of each field are those of the keyword arguments of
    :class:`~curvecast.forecasting.anomalies.AnomalyDetector`, which builds this. Each check copies the fields it uses.
    """

    spike_z: float
    spike_recover_z: float
    spike_min_rise: float
    spike_warn_ratio: float
    persist_points: int
    drift_h: float
    drift_min_rise: float
    divergence_ratio: float
    confirm_points: int
    confirm_steps: int
    plateau_rtol: float
    plateau_points: int
    plateau_fraction: float
    slowdown_ratio: float
    warmup_points: int
    window_points: int

    def __post_init__(self) -> None:
        for name, v, lo in (
            ("spike_z", self.spike_z, 0),
            ("drift_h", self.drift_h, 0),
            ("spike_min_rise", self.spike_min_rise, 0),
        ):
            if not v > lo:
                raise ValueError(f"`{name}` must be > {lo}, but got {v}")
        if not self.divergence_ratio > 1.0 or not self.spike_warn_ratio > 1.0:
            raise ValueError(
                f"`divergence_ratio` and `spike_warn_ratio` must be > 1, but got {self.divergence_ratio}, "
                f"{self.spike_warn_ratio}"
            )
        if not 0.0 < self.slowdown_ratio < 1.0 or not 0.0 < self.plateau_fraction <= 1.0:
            raise ValueError(
                f"`slowdown_ratio` and `plateau_fraction` must be in (0, 1), but got {self.slowdown_ratio}, "
                f"{self.plateau_fraction}"
            )
        counts = (self.persist_points, self.confirm_points, self.plateau_points, self.window_points)
        if min(counts) < 1 or self.warmup_points < 0:
            raise ValueError("point counts must be >= 1 (`warmup_points` >= 0)")
