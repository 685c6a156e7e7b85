"""detect_anomalies: the offline pass of an :class:`AnomalyDetector` over a whole curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from curvecast.forecasting.anomalies.detector import AnomalyDetector
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.stats import check_value

__all__ = ["detect_anomalies"]


def detect_anomalies(
    steps: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    lrs: Sequence[float] | None = None,
    **detector_kwargs: Any,
) -> list[Anomaly]:
    """Run an :class:`AnomalyDetector` over a whole curve, as if it arrived one step at a time.

    The result is exactly what the streaming detector would have reported live (it never looks ahead).

    Args:
        steps: increasing integer steps.
        values: the metric at those steps (NaN and inf allowed: they are reported).
        lrs: the planned LR at every step ``0..N``, when known.
        **detector_kwargs: passed to :class:`AnomalyDetector` (``series``, ``mode``, ``kinds``, ``log_scale``, and
            the thresholds as ``settings``, a :class:`~curvecast.forecasting.anomalies.settings.DetectorSettings`).

    Example:
        >>> vals = [4.0 / (1 + 0.01 * t) for t in range(400)]
        >>> vals[300] = float("nan")
        >>> [(a.kind, a.step, a.severity) for a in detect_anomalies(range(400), vals)]
        [('nonfinite', 300, 'critical')]
    """
    s = np.asarray(steps)
    v = np.asarray(values)
    if s.ndim != 1 or v.ndim != 1:
        raise ValueError(f"`steps` and `values` must be 1-D, but got shapes {s.shape} and {v.shape}")
    if len(s) != len(v):
        raise ValueError(f"`steps` and `values` must have the same length, but got {len(s)} and {len(v)}")
    if v.dtype == object and v.ndim == 1:
        # Python ints past the float range (10**400) make an object array: each is +-inf, reported as non-finite.
        v = np.array([check_value(x, "values") for x in v.tolist()], dtype=np.float64)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"Expected `values` to be real numbers, but got dtype {v.dtype}")
    if s.dtype.kind not in "iuf" or (s.dtype.kind == "f" and not np.all(np.mod(s, 1) == 0)):
        raise TypeError(f"Expected `steps` to be integers, but got dtype {s.dtype}")
    det = AnomalyDetector(lrs=lrs, **detector_kwargs)
    events: list[Anomaly] = []
    for step, value in zip(s.astype(np.int64).tolist(), v.astype(float).tolist(), strict=True):
        events.extend(det.update(step, value))
    return events
