"""The brain: forecasts and anomaly detection on plain arrays (numpy and scipy only, never torch or Lightning)."""

from curvecast.forecasting.report import Report

__all__ = ["Report"]
