"""Forecasts and alerts to the Trainer's other loggers: Weights & Biases, MLflow, any Lightning logger."""

from curvecast.integrations.loggers.forwarder import LoggerForwarder

__all__ = ["LoggerForwarder"]
