"""Overfitting: the validation loss of a run watched by its training loss climbs while the training loss holds.

A run watched by its training loss (``Curvecast()``, the default) forecasts and guards that loss alone, yet the
validation loss it logs is where overfitting shows: a wide MLP on 200 examples had its training loss fall to 1e-4
while its validation loss climbed from 1.19 (epoch 4) to 1.78 (epoch 60), and the run said nothing. The first
validation loss the run logs (``val_loss``, ``val/loss``, ``eval_loss``) gets a divergence detector of its own
(:class:`OverfitWatch`); a climb it reports (clear of the series' noise, as for any monitored metric) while the
training loss is not climbing with it (:func:`training_loss_holds`) is one warning saying so, with the fixes; later
ones are notes. Never critical: such a run is not watched by its validation loss, so its forecast and its early stop
do not act on it (``Curvecast(monitor="val_loss")`` does). While the training loss climbs too, the climb keeps the
detector's own words (the run gets worse on both).

Live, ``curvecast.live.stability_watch`` feeds the watch as the points arrive; ``curvecast analyze`` replays a log's
training and validation losses through the same code in step order (:func:`detect_overfitting`), so both say the same
of the same run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from curvecast.forecasting.anomalies.auxiliary import facts
from curvecast.forecasting.anomalies.detector import AnomalyDetector
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.schedule import LRSchedule
from curvecast.state_checks import checked_mapping, checked_real, checked_reals, checked_whole, require_keys

__all__ = [
    "TRAIN_CLIMB",
    "TRAIN_CLIMB_GIVEN_BACK",
    "WORSE_RISE",
    "WORSE_RUN",
    "OverfitWatch",
    "detect_overfitting",
    "training_loss_holds",
]

# The training loss climbs with a diverging run: its median of 3 points at least 10% above its best, giving back at
# least 1% of the progress it made (the confirmed-divergence bar). A val loss that overfits (0.058 -> 0.1 in a wild
# log) rises while the training loss stays at its best.
TRAIN_CLIMB = 0.10
TRAIN_CLIMB_GIVEN_BACK = 0.01

# A validation loss worse at each of at least WORSE_RUN validations in a row, by WORSE_RISE over them in all, while the
# training loss holds, overfits, whatever its noise: six values of a flat noisy loss come in rising order once in 720,
# and never 10% apart. The divergence rules wait out their first 20 points (a loss logged once an epoch: 20 epochs)
# and a ratio of 1.5: a fine-tuning run worse from its first epoch (2.63 -> 3.22 over 10 epochs, its training loss
# at 0.001) went untold.
WORSE_RUN = 5
WORSE_RISE = 0.10

_SAID = (
    " The training loss is not climbing with it: the model overfits. Keep the best checkpoint "
    '(`ModelCheckpoint(monitor="{series}")`), add data or regularisation, or let '
    '`Curvecast(monitor="{series}", early_stopping=True)` stop such a run on its forecast.'
)


def training_loss_holds(level: SeriesLevel) -> bool:
    """The training loss whose detector's level is ``level`` has been seen and is not climbing (``TRAIN_CLIMB``)."""
    if level.n == 0 or not level.recent:
        return False
    progress, short = level.progress, level.recent_median(3)
    climbing = short - progress.best >= level.rise(1.0 + TRAIN_CLIMB, progress.best)
    return not (climbing and progress.given_back(short) >= TRAIN_CLIMB_GIVEN_BACK)


class OverfitWatch:
    """The first validation loss a run logs, watched for a climb while the training loss holds (see the module
    docstring)."""

    def __init__(self) -> None:
        self.detector: AnomalyDetector | None = None  # made for the first validation loss seen
        self.warned = False  # the one warning was given: later climbs are notes
        self._schedule: Sequence[float] | LRSchedule | None = None
        self.rises = 0  # validations in a row, each worse than the one before
        self.rise_from: tuple[int, float] | None = None  # (step, value) where they started
        self.last_value: float | None = None

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
        found = self._worse_every_time(step, value, training_loss_holds) if speak else []
        if not speak:
            self._follow(step, value)
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

    def _follow(self, step: int, value: float) -> None:
        """Count the validations in a row each worse than the one before, ending with ``(step, value)`` (a value
        that is not finite ends the count: the detector tells it, and a saved state holds finite numbers only)."""
        if not math.isfinite(value):
            self.rises, self.rise_from, self.last_value = 0, None, None
            return
        if self.last_value is not None and value > self.last_value:
            self.rises += 1
        else:
            self.rises, self.rise_from = 0, (step, value)
        self.last_value = value

    def _worse_every_time(self, step: int, value: float, holds: Callable[[], bool]) -> list[Anomaly]:
        """The one warning, where the validation loss (positive) got worse at each of at least ``WORSE_RUN``
        validations in a row, by ``WORSE_RISE`` over them, while the training loss holds (see ``WORSE_RUN``)."""
        self._follow(step, value)
        if self.warned or self.rises < WORSE_RUN or self.rise_from is None:
            return []
        (since, first), series = self.rise_from, self.series
        if not (first > 0.0 and value >= (1.0 + WORSE_RISE) * first and holds()):
            return []
        self.warned = True
        text = (
            f"{series} got worse at each of its last {self.rises} validations: {value:.4g} at step {step} against "
            f"{first:.4g} at step {since}." + _SAID.format(series=series)
        )
        return [Anomaly("divergence", step, "warning", text, series, value / first, value)]

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
        return {
            "series": self.detector.series, "detector": self.detector.state_dict(), "warned": self.warned,
            "rises": self.rises, "rise_from": None if self.rise_from is None else list(self.rise_from),
            "last_value": self.last_value,
        }  # fmt: skip

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
        # Saved before the rises were counted: none under way.
        watch.rises = checked_whole("`OverfitWatch.rises`", saved.get("rises", 0), low=0)
        start, last = saved.get("rise_from"), saved.get("last_value")
        if start is not None:
            pair = checked_reals("`OverfitWatch.rise_from`", start, max_len=2)
            if len(pair) != 2:
                raise ValueError(f"Expected `OverfitWatch.rise_from` to be [step, value], but got {pair}")
            step, value = pair
            watch.rise_from = (int(checked_whole("`OverfitWatch.rise_from` step", step)), value)
        watch.last_value = None if last is None else checked_real("`OverfitWatch.last_value`", last)
        return watch


def detect_overfitting(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    series: str,
    *,
    lrs: Sequence[float] | None = None,
) -> list[Anomaly]:
    """What a live run watched by its training loss would have said of its validation loss ``series``: the
    training loss ``train`` and the validation loss ``validation`` (each ``(steps, values)``, steps increasing) fed in
    step order, the training loss first at a step both have (as ``StabilityWatch`` takes them), the training loss
    through a detector's level as live (a detector with no checks: its level is all :func:`training_loss_holds`
    reads). ``lrs``: the planned LR at every step, when known (a scheduled LR rise restarts both levels, as live).
    """
    trained = AnomalyDetector("training loss", mode="min", kinds=(), lrs=lrs)
    watch = OverfitWatch()
    watch.set_schedule(lrs)

    def holds() -> bool:  # asked only when a climb is found
        return training_loss_holds(trained.level)

    points = [(int(s), 0, float(v)) for s, v in zip(*train, strict=True)]
    points += [(int(s), 1, float(v)) for s, v in zip(*validation, strict=True)]
    found: list[Anomaly] = []
    for step, is_validation, value in sorted(points):
        if not is_validation:
            if trained.last_step is None or step > trained.last_step:
                trained.update(step, value)
        else:
            # Without a training loss there is no telling overfitting from the rest: the detector learns, nothing said.
            found += watch.update(series, step, value, holds, speak=trained.level.n > 0)
    return found
