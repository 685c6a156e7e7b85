"""The wiring of a live run: the :class:`Curvecast` bundle, when it forecasts, how it watches, what actuators see.

- ``bundle.py``: :class:`Curvecast`, the one-line callback: forwards Lightning's hooks to the sensors, feeds recorded
  points to the stability watch, forecasts on a cadence, hands each report to the actuators, votes on stops.
- ``actuator.py``: :class:`Actuator`, the base of what acts on reports, and :class:`RunContext`, what it may read.
- ``cadence.py``: when to forecast and the :class:`~curvecast.forecasting.Report` a forecast makes.
- ``runner.py``: runs forecasts in a worker thread, one at a time, never blocking the training step.
- ``stability_watch.py``: routes each recorded point to its anomaly detector.

``Curvecast`` is imported on first use: the actuators import this package for :class:`Actuator`, and the bundle
imports the actuators.
"""

from typing import TYPE_CHECKING, Any

from curvecast.live.actuator import Actuator, RunContext

if TYPE_CHECKING:
    from curvecast.live.bundle import Curvecast

__all__ = ["Actuator", "Curvecast", "RunContext"]


def __getattr__(name: str) -> Any:
    if name == "Curvecast":
        from curvecast.live.bundle import Curvecast

        return Curvecast
    raise AttributeError(f"module 'curvecast.live' has no attribute {name!r}")
