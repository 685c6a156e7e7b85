"""Stability anomalies of training curves, found as the points arrive (pure Python and numpy: no torch).

The public family: :class:`Anomaly` (one event), :class:`AnomalyDetector` (one series, streaming) and its thresholds
(:class:`DetectorSettings`), :class:`InstabilityMonitor` (loss and gradient norm together, early warning) and
:func:`detect_anomalies` (the streaming detector run over a whole curve).

How it is built: an :class:`AnomalyDetector` feeds each value of its series to one shared
:class:`~curvecast.forecasting.anomalies.level.SeriesLevel` (the scale, the recent points, the accepted differences,
the noise and the score of the latest point, and its :class:`~curvecast.forecasting.anomalies.progress.Progress`: how
far it has come and whether it still falls fast), then to one check per selected kind. Each check
(:class:`~curvecast.forecasting.anomalies.check.Check`) owns its state, reads the level without writing to it, and
returns the events it finds; the detector's ``state_dict()`` nests the level's and each check's state by name.

How to add a kind, say ``"oscillation"``:

1. Write ``oscillation.py`` here with one class ``OscillationCheck(Check)``: ``kind = "oscillation"``, its state in
   ``STATE`` (plain values only: scalars, ``None``, lists of floats; initialised in ``__init__(level, settings)``),
   ``update(step, value) -> list[Anomaly]`` reading ``self.level`` in O(1), ``on_lr_rise()`` if a scheduled LR rise
   should restart it, and its message as a function next to it. :mod:`.plateau` is a short example to copy.
2. Register it: add ``OscillationCheck.kind: OscillationCheck`` to ``CHECKS`` in :mod:`.detector` (where it goes sets
   the order of the events; add the kind to ``DEFAULT_KINDS`` next to it if it should run by default), and name
   ``"oscillation"`` in ``KINDS`` in :mod:`.event`, the vocabulary an :class:`Anomaly` checks its kind against (a
   test fails if a registered kind is missing there).

A threshold worth tuning goes into :class:`DetectorSettings` as a field with its default (a detector takes them as
``AnomalyDetector(settings=DetectorSettings(...))``); a fixed one stays a constant in the check's module.
"""

from curvecast.forecasting.anomalies.detector import DEFAULT_KINDS, AnomalyDetector
from curvecast.forecasting.anomalies.event import KINDS, SEVERITIES, Anomaly
from curvecast.forecasting.anomalies.instability import InstabilityMonitor
from curvecast.forecasting.anomalies.offline import detect_anomalies
from curvecast.forecasting.anomalies.settings import DetectorSettings

__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "SEVERITIES",
    "Anomaly",
    "AnomalyDetector",
    "DetectorSettings",
    "InstabilityMonitor",
    "detect_anomalies",
]
