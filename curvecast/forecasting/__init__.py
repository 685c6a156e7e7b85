"""The brain: forecasts and anomaly detection on plain arrays (numpy and scipy only, never torch or Lightning)."""

from curvecast.forecasting.anomalies import Anomaly, AnomalyDetector, DetectorSettings, detect_anomalies
from curvecast.forecasting.fit_diagnostics import FitDiagnostics
from curvecast.forecasting.forecast import Forecast
from curvecast.forecasting.forecaster import Forecaster
from curvecast.forecasting.references import Reference
from curvecast.forecasting.report import Report

__all__ = [
    "Anomaly",
    "AnomalyDetector",
    "DetectorSettings",
    "FitDiagnostics",
    "Forecast",
    "Forecaster",
    "Reference",
    "Report",
    "detect_anomalies",
]
