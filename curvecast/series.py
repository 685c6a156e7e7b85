"""The names of every series curvecast records, and of the tags it writes: the one place that spells them.

A series name is the key of a :class:`~curvecast.history.RunHistory` column. Sensors record under these names, the
live wiring routes them to detectors and forecasts, actuators read them back, and loggers see them with
:data:`METRIC_PREFIX` in front (``curvecast/gns/b_simple``). Validation metrics keep the name the module logged them
under (``val_loss``). Pure Python: importing it costs nothing, so the forecaster and the offline tools use it too.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "ALERTS_TAG",
    "DATA_WAIT",
    "DATA_WAIT_FRACTION",
    "FORECAST_PREFIX",
    "GNS_B_SIMPLE",
    "GNS_GRAD_SQ_NORM",
    "GNS_TRACE_COV",
    "GRAD_NORM",
    "LR",
    "METRIC_PREFIX",
    "SAMPLES_PER_SEC",
    "STEP_TIME",
    "STOPPED_TAG",
    "THROUGHPUT_PREFIX",
    "TRAIN_LOSS",
    "is_validation_loss",
    "is_validation_metric",
    "logged_name",
    "throughput",
]

METRIC_PREFIX = "curvecast/"  # every metric and tag curvecast writes to a logger starts with it

# -- series in the run's history -------------------------------------------------------------------------------
TRAIN_LOSS = "loss"  # the training loss of every optimizer step (LossCapture)
LR = "lr"  # the LR every optimizer step used (LearningRateCapture)
GRAD_NORM = "grad_norm"  # the pre-clip gradient norm (GradientNoiseScale: each step on an accelerator, 1 in 8 on CPU)
GNS_GRAD_SQ_NORM = "gns/grad_sq_norm"  # |G|^2, the squared norm of the true gradient
GNS_TRACE_COV = "gns/trace_cov"  # tr(Sigma), the per-example gradient variance
GNS_B_SIMPLE = "gns/b_simple"  # tr(Sigma) / |G|^2, the simple noise scale
THROUGHPUT_PREFIX = "throughput/"
STEP_TIME = THROUGHPUT_PREFIX + "step_time"
DATA_WAIT = THROUGHPUT_PREFIX + "data_wait"
DATA_WAIT_FRACTION = THROUGHPUT_PREFIX + "data_wait_fraction"
SAMPLES_PER_SEC = THROUGHPUT_PREFIX + "samples_per_sec"

# -- tags only written to loggers ----------------------------------------------------------------------------------
FORECAST_PREFIX = METRIC_PREFIX + "forecast/"  # curvecast/forecast/final, final_lo, final_hi, ...
ALERTS_TAG = METRIC_PREFIX + "alerts"  # TensorBoard text tag of every alert
STOPPED_TAG = METRIC_PREFIX + "early_stopping/stopped"


def throughput(name: str) -> str:
    """The series of one throughput measure: ``throughput("mfu") == "throughput/mfu"``."""
    return THROUGHPUT_PREFIX + name


def logged_name(series: str) -> str:
    """The name a series has in a logger: ``logged_name("gns/b_simple") == "curvecast/gns/b_simple"``."""
    return METRIC_PREFIX + series


_VALIDATION_NAME = re.compile(r"(^|[^a-z])(val|eval)")  # val_loss, val/acc, loss_val, eval_loss; not "interval"


def is_validation_metric(name: str) -> bool:
    """Whether ``name`` reads as a validation metric (``val_loss``, ``val/acc``, ``eval_loss``; not ``interval``, nor
    curvecast's own ``curvecast/val_loss``)."""
    return not name.startswith(METRIC_PREFIX) and _VALIDATION_NAME.search(name.lower()) is not None


@functools.lru_cache(maxsize=1024)  # asked live of every series the run records, the LR of each step among them
def is_validation_loss(name: str) -> bool:
    """Whether ``name`` reads as a validation loss (``val_loss``, ``val/loss``, ``eval_loss``; not ``val_acc``)."""
    return is_validation_metric(name) and "loss" in name.lower()
