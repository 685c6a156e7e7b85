"""Actuators: what acts on a Report (TensorBoard, other loggers, logging, early stopping, advice, Optuna), and their
contract."""

from curvecast.forecasting.stop_request import StopReason, StopRequest
from curvecast.integrations.actuator import Actuator, RunContext
from curvecast.integrations.advice import HyperparameterAdvisor
from curvecast.integrations.alerts import Alert, AlertLogger, publish_alert
from curvecast.integrations.early_stopping import ForecastEarlyStopping
from curvecast.integrations.forecast_log import ForecastLogger
from curvecast.integrations.loggers.forwarder import LoggerForwarder
from curvecast.integrations.stop_rule import ForecastStopRule
from curvecast.integrations.tensorboard import TensorBoardReporter

__all__ = [
    "Actuator",
    "Alert",
    "AlertLogger",
    "ForecastEarlyStopping",
    "ForecastLogger",
    "ForecastStopRule",
    "HyperparameterAdvisor",
    "LoggerForwarder",
    "RunContext",
    "StopReason",
    "StopRequest",
    "TensorBoardReporter",
    "publish_alert",
]
