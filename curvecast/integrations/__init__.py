"""Actuators: what acts on a Report (TensorBoard, logging, early stopping, advice, Optuna)."""

from curvecast.integrations.advice import HyperparameterAdvisor
from curvecast.integrations.alerts import Alert, AlertLogger, publish_alert
from curvecast.integrations.early_stopping import ForecastEarlyStopping
from curvecast.integrations.forecast_log import ForecastLogger
from curvecast.integrations.stop_rule import ForecastStopRule, StopReason, StopRequest
from curvecast.integrations.tensorboard import TensorBoardReporter

__all__ = [
    "Alert",
    "AlertLogger",
    "ForecastEarlyStopping",
    "ForecastLogger",
    "ForecastStopRule",
    "HyperparameterAdvisor",
    "StopReason",
    "StopRequest",
    "TensorBoardReporter",
    "publish_alert",
]
