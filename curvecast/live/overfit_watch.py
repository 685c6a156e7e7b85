"""OverfitWatch: the validation loss of a run watched by its training loss. Its climb, while the training loss holds,
is overfitting, and nothing else in such a run says so.

A run watched by its training loss (``Curvecast()``, the default) forecasts and guards that loss alone, yet the
validation loss it logs is where overfitting shows: a wide MLP on 200 examples had its training loss fall to 1e-4
while its validation loss climbed from 1.19 (epoch 4) to 1.78 (epoch 60), and the run said nothing. The first
validation loss the run logs (``val_loss``, ``val/loss``, ``eval_loss``) gets a divergence detector of its own; a climb
it reports (clear of the series' noise, as for any monitored metric) while the training loss is not climbing with it
is one warning saying so, with the fixes; later ones are notes. Never critical: this run is not watched by its
validation loss, so its forecast and its early stop do not act on it (``Curvecast(monitor="val_loss")`` does). While
the training loss climbs too, its own detectors speak and this one stays silent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from curvecast.callbacks.loss_capture import is_validation_metric
from curvecast.forecasting.anomalies import Anomaly, AnomalyDetector
from curvecast.forecasting.anomalies.auxiliary import facts
from curvecast.forecasting.schedule import LRSchedule
from curvecast.state_checks import checked_mapping, require_keys

__all__ = ["OverfitWatch", "is_validation_loss"]

_SAID = (
    " The training loss is not climbing with it: the model overfits. Keep the best checkpoint "
    '(`ModelCheckpoint(monitor="{series}")`), add data or regularisation, or let '
    '`Curvecast(monitor="{series}", early_stopping=True)` stop such a run on its forecast.'
)


@functools.lru_cache(maxsize=1024)  # asked of every series the run records, the LR of each step among them
def is_validation_loss(name: str) -> bool:
    """Whether ``name`` reads as a validation loss (``val_loss``, ``val/loss``, ``eval_loss``; not ``val_acc``)."""
    return is_validation_metric(name) and "loss" in name.lower()


class OverfitWatch:
    """The first validation loss a run logs, watched for a climb while the training loss holds (see the module
    docstring)."""

    def __init__(self) -> None:
        self.detector: AnomalyDetector | None = None  # made for the first validation loss seen
        self.warned = False  # the one warning was given: later climbs are notes
        self._schedule: Sequence[float] | LRSchedule | None = None

    @property
    def series(self) -> str | None:
        return None if self.detector is None else self.detector.series

    def update(
        self, name: str, step: int, value: float, training_loss_holds: Callable[[], bool], speak: bool = True
    ) -> list[Anomaly]:
        """Take one point of a validation loss; the overfitting it shows, if any (none while not ``speak``)."""
        if self.detector is None:
            self.detector = AnomalyDetector(name, mode="min", kinds=("divergence",))
            self.detector.set_schedule(self._schedule)
        elif name != self.detector.series or (self.detector.last_step is not None and step <= self.detector.last_step):
            return []  # another validation loss, or a resumed run replaying steps already seen
        found = []
        for anomaly in self.detector.update(step, value):
            if anomaly.kind != "divergence" or not speak:
                continue
            severity = "info" if self.warned or anomaly.severity == "info" else "warning"
            self.warned = self.warned or severity == "warning"
            if training_loss_holds():
                anomaly = replace(anomaly, message=facts(anomaly.message) + _SAID.format(series=anomaly.series))
            # Else the run gets worse on both (its own words stand), or the training loss is too noisy to say.
            found.append(replace(anomaly, severity=severity))
        return found

    def set_schedule(self, lrs: Sequence[float] | LRSchedule | None) -> None:
        self._schedule = lrs
        if self.detector is not None:
            self.detector.set_schedule(lrs)

    def epoch_started(self, step: int) -> None:
        if self.detector is not None:
            self.detector.epoch_started(step)

    def state_dict(self) -> dict[str, Any] | None:
        if self.detector is None:
            return None
        return {"series": self.detector.series, "detector": self.detector.state_dict(), "warned": self.warned}

    def restored(self, state: Any) -> OverfitWatch:
        """A new watch holding :meth:`state_dict`'s ``state`` (None: a fresh one), with this one's schedule; a damaged
        state raises ``KeyError``, ``TypeError`` or ``ValueError`` and this watch is left as it is."""
        watch = OverfitWatch()
        watch._schedule = self._schedule
        if state is None:
            return watch
        saved = checked_mapping("the OverfitWatch state", state)
        require_keys("the OverfitWatch state", saved, ("series", "detector", "warned"))
        series, warned = saved["series"], saved["warned"]
        if not isinstance(series, str) or not isinstance(warned, bool):
            raise TypeError(f"Expected the OverfitWatch state's `series` to be a str and `warned` a bool, but got "
                            f"{type(series).__name__} and {type(warned).__name__}")  # fmt: skip
        watch.detector = AnomalyDetector(series, mode="min", kinds=("divergence",))
        watch.detector.set_schedule(self._schedule)
        watch.detector.load_state_dict(saved["detector"])
        watch.warned = warned
        return watch
