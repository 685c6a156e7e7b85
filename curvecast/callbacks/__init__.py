"""Sensors: Lightning callbacks that measure a live run and record it into a RunHistory."""

from curvecast.callbacks.loss_capture import LossCapture
from curvecast.callbacks.lr_capture import LearningRateCapture

__all__ = ["LearningRateCapture", "LossCapture"]
