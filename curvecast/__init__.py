"""curvecast: forecast where a PyTorch Lightning run is going, and act on it."""

from curvecast.bundle import Curvecast
from curvecast.history import RunHistory, Series

__version__ = "0.1.0"
__all__ = ["Curvecast", "RunHistory", "Series", "__version__"]
