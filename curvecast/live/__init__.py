"""The wiring of a live run: the :class:`Curvecast` bundle, when it forecasts, how it watches.

- ``bundle.py``: :class:`Curvecast`, the one-line callback: forwards Lightning's hooks to the sensors, feeds recorded
  points to the stability watch, forecasts on a cadence, collects each report's stop decision and hands the report
  to the actuators, votes on stops.
- ``cadence.py``: when to forecast and the :class:`~curvecast.forecasting.Report` a forecast makes.
- ``runner.py``: runs forecasts in a worker thread, one at a time, never blocking the training step.
- ``stability_watch.py``: routes each recorded point to its anomaly detector.

The actuators' contract (:class:`~curvecast.integrations.actuator.Actuator`) lives beside the actuators.
"""

from curvecast.live.bundle import Curvecast

__all__ = ["Curvecast"]
