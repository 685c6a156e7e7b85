"""The overfitting ``curvecast analyze`` tells of a training loss: the log's validation loss replayed beside it.

A live run watched by its training loss (the default ``Curvecast()``) watches the first validation loss it logs and
says, once, when that climbs while the training loss holds (``forecasting.anomalies.overfit``). Analysing the
training loss of a log, ``analyze`` replays the same two series through the same code, in step order
(``detect_overfitting``), so the log of a run says what the run said live; here, which two series those are. A series
that is not a training loss (a validation loss, a score, a gradient norm) is analysed alone.
"""

from __future__ import annotations

from curvecast.logreaders import Curve, RunLog
from curvecast.logreaders.select import is_held_out
from curvecast.series import METRIC_PREFIX, is_validation_loss, is_validation_metric

__all__ = ["in_run", "is_training_loss", "validation_loss_beside"]


def in_run(curve: Curve) -> str:
    """The series' name as its run logged it (``version_0/val_loss`` -> ``val_loss``)."""
    return curve.name[len(curve.run) + 1 :] if curve.run else curve.name


def is_training_loss(curve: Curve, mode: str) -> bool:
    """Whether ``curve``, analysed in ``mode``, is a training loss: better low, named a loss, of no held-out data
    (curvecast's own record ``curvecast/loss`` is one; its ``curvecast/val_loss`` is not)."""
    name = in_run(curve).removeprefix(METRIC_PREFIX)
    return mode == "min" and "loss" in name.lower() and not (is_validation_metric(name) or is_held_out(name))


def validation_loss_beside(log: RunLog, curve: Curve) -> Curve | None:
    """The validation loss a live run logging ``curve``'s series would watch: of the same run, the first logged (the
    earliest first step; the first in the log at a tie), or None."""
    losses = [
        other
        for other in log.curves.values()
        if other.run == curve.run and other is not curve and len(other) and is_validation_loss(in_run(other))
    ]
    return min(losses, key=lambda other: int(other.steps[0]), default=None)  # min keeps the first of equals

