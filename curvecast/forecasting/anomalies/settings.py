"""DetectorSettings: the thresholds of one :class:`~curvecast.forecasting.anomalies.AnomalyDetector`, checked once."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DetectorSettings"]


@dataclass(frozen=True)
class DetectorSettings:
    """The tunable thresholds of one :class:`~curvecast.forecasting.anomalies.AnomalyDetector`, which every part of it
    reads (configuration, not state: never saved). Each check copies the fields it uses; the class docstring of
    ``AnomalyDetector`` says how each kind uses them.

    Attributes:
        spike_z: robust z above which a point is a spike at once (and an outlier kept out of the noise).
        spike_recover_z: robust z above which a point is a spike if the next value recovers.
        spike_min_rise: the least rise above the baseline (relative) a spike needs.
        spike_warn_ratio: a spike this many times the baseline or more is a ``warning``, a smaller one ``info``.
        persist_points: more consecutive flagged points than this are a level shift, not a spike.
        drift_h: alarm level of the one-sided CUSUM behind a divergence warning.
        drift_min_rise: that warning also needs the median of 5 points this much (relative) above where the CUSUM
            last stood at zero.
        divergence_ratio: a level this many times the best level is a divergence (see ``confirm_points``).
        confirm_points, confirm_steps: a divergence is ``critical`` once this many consecutive values, spanning at
            least this many steps, stay at ``divergence_ratio`` times the best level.
        plateau_rtol, plateau_points, plateau_fraction: a plateau is a median of 9 points that has not improved by
            ``plateau_rtol`` (relative) over the last ``plateau_fraction`` of the steps seen and at least
            ``plateau_points`` points.
        slowdown_ratio: a throughput below this fraction of its level after warmup is a slowdown.
        warmup_points: spike and divergence alarms wait this many points.
        window_points: the noise is taken from up to this many first differences.

    Example:
        >>> from curvecast.forecasting.anomalies import AnomalyDetector
        >>> quiet = DetectorSettings(spike_z=9.0, warmup_points=50)
        >>> det = AnomalyDetector("grad_norm", kinds=("nonfinite", "spike"), settings=quiet)
        >>> det.settings.spike_z, det.settings.spike_min_rise
        (9.0, 0.02)
        >>> DetectorSettings(spike_z=0.0)
        Traceback (most recent call last):
        ...
        ValueError: `spike_z` must be > 0, but got 0.0
    """

    spike_z: float = 7.0
    spike_recover_z: float = 5.5
    spike_min_rise: float = 0.02
    spike_warn_ratio: float = 1.25
    persist_points: int = 3
    drift_h: float = 12.0
    drift_min_rise: float = 0.1
    divergence_ratio: float = 1.5
    confirm_points: int = 3
    confirm_steps: int = 50
    plateau_rtol: float = 0.01
    plateau_points: int = 50
    plateau_fraction: float = 0.25
    slowdown_ratio: float = 0.8
    warmup_points: int = 20
    window_points: int = 128

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
            raise ValueError(
                "`persist_points`, `confirm_points`, `plateau_points` and `window_points` must be >= 1 and "
                f"`warmup_points` >= 0, but got {counts} and {self.warmup_points}"
            )
