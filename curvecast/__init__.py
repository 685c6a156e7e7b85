"""curvecast: forecast where a PyTorch Lightning run is going, and act on it.

``Curvecast`` (and the actuators' base, ``Actuator``) are imported on first use, so that ``curvecast.forecasting`` and
``curvecast analyze`` load neither torch nor Lightning (a few seconds saved, and the forecaster usable where torch is
not installed): importing any subpackage runs this file first.
"""

from typing import TYPE_CHECKING, Any

from curvecast.history import RunHistory, Series

if TYPE_CHECKING:
    from curvecast.integrations.actuator import Actuator
    from curvecast.live.bundle import Curvecast

__version__ = "0.1.0"
__all__ = ["Actuator", "Curvecast", "RunHistory", "Series", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Curvecast":
        from curvecast.live.bundle import Curvecast

        return Curvecast
    if name == "Actuator":
        from curvecast.integrations.actuator import Actuator

        return Actuator
    raise AttributeError(f"module 'curvecast' has no attribute {name!r}")
