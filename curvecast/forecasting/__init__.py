"""The brain: forecasts and anomaly detection on plain arrays (numpy and scipy only, never torch or Lightning)."""

from curvecast.forecasting.forecast import Forecast
from curvecast.forecasting.forecaster import Forecaster
from curvecast.forecasting.report import Report

__all__ = ["Forecast", "Forecaster", "Report"]
