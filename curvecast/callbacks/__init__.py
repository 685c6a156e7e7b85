"""Sensors: Lightning callbacks that measure a live run and record it into a RunHistory.

One module per sensor, beside their ``Sensor`` base; the torch-level arithmetic they use (gradient norms, the GNS
estimator, FLOP counting, timing statistics, schedule replay) lives in :mod:`curvecast.callbacks.measures`.
"""

from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.loss_capture import LossCapture
from curvecast.callbacks.lr_capture import LearningRateCapture
from curvecast.callbacks.throughput import Throughput

__all__ = ["GradientNoiseScale", "LearningRateCapture", "LossCapture", "Throughput"]
