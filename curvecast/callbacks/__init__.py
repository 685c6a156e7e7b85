"""Sensors: Lightning callbacks that measure a live run and record it into a RunHistory."""

from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.loss_capture import LossCapture
from curvecast.callbacks.lr_capture import LearningRateCapture
from curvecast.callbacks.throughput import Throughput

__all__ = ["GradientNoiseScale", "LearningRateCapture", "LossCapture", "Throughput"]
