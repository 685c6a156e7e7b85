"""One logged curve into an ``Analysis``: its forecast to a horizon and its anomalies, from the log of a finished run.

``analyze()`` does the work; :mod:`curvecast.offline.analyze` (the ``curvecast analyze`` command) prints it, and
:mod:`curvecast.offline.runs` ranks many runs by it. The forecaster loads on the first call, not on import.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from curvecast.logreaders import Curve, LogReadError, RunLog, choose_loss, choose_lr, read_log
from curvecast.logreaders.base import printable
from curvecast.logreaders.select import lr_at_every_step
from curvecast.metric_direction import names_a_coefficient, names_a_return, read_direction
from curvecast.offline.overfitting import in_run, is_training_loss, validation_loss_beside
from curvecast.offline.planned_end import PlannedEnd, planned_end

if TYPE_CHECKING:
    from curvecast.forecasting import Anomaly, Forecast

__all__ = ["MAX_DETECTOR_POINTS", "MIN_POINTS", "Analysis", "AnalyzeError", "analyze", "bucket_maxima", "run_name"]

MIN_POINTS = 5  # the Forecaster's default `min_points`: fewer finite points cannot be forecast
_SCATTER_POINTS = 200  # at most, of the latest logged values whose scatter about the fit is told at the log's end
# The streaming anomaly detector costs tens of microseconds a point; a longer curve is searched on bucket maxima.
MAX_DETECTOR_POINTS = 50_000


class AnalyzeError(ValueError):
    """Arguments that cannot apply to the log, e.g. a horizon before its last step."""


@dataclass(frozen=True)
class Analysis:
    """The outcome of ``analyze``.

    Attributes:
        log: everything read from the path.
        curve: the series analysed.
        lr: the learning-rate series found, or None.
        lr_used: whether ``lr`` covered every step up to the horizon and was given to the forecaster.
        horizon: the step forecast to.
        target: the target asked about, or None.
        forecast: the ``Forecast`` (``forecast.ok`` False with ``forecast.reason`` when none could be made).
        anomalies: the ``Anomaly`` events found over the whole curve, in step order.
        anomaly_bucket: how many logged points each point given to the anomaly detector stands for (1: all of them).
        mode: ``"min"`` when the series is better low, ``"max"`` when better high (given, or read from its name).
        bounds: the series' range given to the forecaster, or None.
        direction: one line on the direction and range assumed, and why (``metric_direction.read_direction``).
        planned: the run's planned last step from its own records (``planned_end``), or None when they hold none.
        horizon_given: whether ``horizon`` was asked for, rather than read from the records or the log's end.
        validation: the validation loss replayed beside ``curve``, a training loss, as a live run watched by it
            watches one (``offline.overfitting``), or None (``curve`` is no training loss, or the log holds none).
        overfitting: what that live run would have said of ``validation``, in step order: its climbs while the
            training loss holds (one warning, later notes; ``forecasting.anomalies.overfit``).
    """

    log: RunLog
    curve: Curve
    lr: Curve | None
    lr_used: bool
    horizon: int
    target: float | None
    forecast: Forecast
    anomalies: list[Anomaly]
    anomaly_bucket: int = 1
    mode: str = "min"
    bounds: tuple[float | None, float | None] | None = None
    direction: str = ""
    planned: PlannedEnd | None = None
    horizon_given: bool = False
    validation: str | None = None
    overfitting: list[Anomaly] = field(default_factory=list)

    @property
    def returns(self) -> list[str]:
        """The series of the log that name an RL agent's return (``total_reward``, ``episode_return``)."""
        return logged_returns(self.log)

    @property
    def coefficients(self) -> list[str]:
        """The series of the log that name a weight of the objective's terms (``beta``, ``kl_weight``)."""
        return list(_coefficients(self.log, self.curve))

    @property
    def last_step(self) -> int:
        return int(self.curve.steps[-1])

    @property
    def beyond_log(self) -> bool:
        """Whether the horizon lies past the last logged step: at that step the log itself says the value."""
        return self.horizon > self.last_step

    def scatter(self, level: float = 0.8) -> tuple[float, float, int]:
        """How far the latest logged values (the last quarter, at most ``_SCATTER_POINTS``) lie from the fit: the
        central ``level`` range of their differences ``(lo, hi)`` and how many there are (nan, nan, 0 without a fit)."""
        latest = min(max(len(self.curve) // 4, MIN_POINTS), _SCATTER_POINTS)  # the fit skips the early transient
        residuals = self.curve.values[-latest:] - self.forecast.predict(self.curve.steps[-latest:])
        residuals = residuals[np.isfinite(residuals)]
        if not self.forecast.ok or residuals.size == 0:
            return math.nan, math.nan, 0
        lo, hi = np.quantile(residuals, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
        return float(lo), float(hi), int(residuals.size)

    def reached_at(self) -> int | None:
        """The first logged step whose value reaches ``target`` (at or below it, or above it for a score), or None."""
        if self.target is None:
            return None
        sign = 1.0 if self.mode == "min" else -1.0
        hit = np.flatnonzero(sign * self.curve.values <= sign * self.target)
        return int(self.curve.steps[hit[0]]) if hit.size else None

    @property
    def target_chance(self) -> float | None:
        """The chance the series ends on the good side of ``target`` at the horizon, or None (no target or forecast)."""
        from curvecast.forecasting.report import target_chance

        return target_chance(self.forecast, self.target)


def run_name(source: str | Path) -> str:
    """The name of the run a log belongs to: its directory's, or the file's stem (a ``metrics.csv`` or an event file
    is named by the directory holding it)."""
    path = Path(source).resolve()
    if path.is_dir():
        return path.name or "run"
    if "tfevents" in path.name or path.stem.lower() == "metrics":  # events.out.tfevents.<time>.<host>, metrics.csv
        return path.parent.name or "run"
    return path.stem or "run"


def bucket_maxima(steps: np.ndarray, values: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Each run of ``bucket`` points as one point: its maximum at its own step, or its first non-finite value.

    The maximum keeps a spike's height and step (a mean would dilute it), and a bucket holding a NaN or inf stays
    non-finite, so the critical events survive the thinning.
    """
    n = len(steps) // bucket * bucket
    tail_steps, tail_values = steps[n:], values[n:]
    block = values[:n].reshape(-1, bucket)
    finite = np.isfinite(block)
    pick = np.where(finite.all(axis=1), np.argmax(np.where(finite, block, -np.inf), axis=1), np.argmin(finite, axis=1))
    rows = np.arange(len(block))
    out_steps = steps[:n].reshape(-1, bucket)[rows, pick]
    return np.r_[out_steps, tail_steps], np.r_[block[rows, pick], tail_values]


def _thinned(curve: Curve, mode: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The points the streaming detectors are given (``MAX_DETECTOR_POINTS`` at most), and how many each stands for."""
    steps, values = curve.steps, curve.values
    bucket = -(-len(steps) // MAX_DETECTOR_POINTS)
    if bucket > 1:  # the worst point of each bucket: its maximum, or for a score its minimum
        sign = 1.0 if mode == "min" else -1.0
        steps, worst = bucket_maxima(steps, sign * values, bucket)
        values = sign * worst
    return steps, values, bucket


def _detect(curve: Curve, lr: Curve | None, mode: str) -> tuple[list[Anomaly], int]:
    from curvecast.forecasting import detect_anomalies

    steps, values, bucket = _thinned(curve, mode)
    lrs = lr_at_every_step(lr, int(steps[-1])) if lr is not None else None
    events = detect_anomalies(steps, values, lrs=None if lrs is None else lrs.tolist(), series=curve.name, mode=mode)
    return sorted(events, key=lambda event: event.step), bucket


def _overfitting(log: RunLog, curve: Curve, lr: Curve | None, mode: str) -> tuple[str | None, list[Anomaly]]:
    """The validation loss a live run watched by ``curve``, a training loss, would watch, and what it would have said
    of it (``forecasting.anomalies.overfit``); ``(None, [])`` when ``curve`` is no training loss or has none beside
    it. Each series is thinned as ``_detect`` thins one (the worst point of each bucket)."""
    from curvecast.forecasting.anomalies.overfit import detect_overfitting

    validation = validation_loss_beside(log, curve) if is_training_loss(curve, mode) else None
    if validation is None:
        return None, []
    train_steps, train_values, _ = _thinned(curve, "min")
    val_steps, val_values, _ = _thinned(validation, "min")
    lrs = None
    if lr is not None:  # to the last step of either; an LR log that ends sooner still serves the training loss's
        lrs = lr_at_every_step(lr, int(max(train_steps[-1], val_steps[-1])))
        lrs = lr_at_every_step(lr, int(train_steps[-1])) if lrs is None else lrs
    found = detect_overfitting((train_steps, train_values), (val_steps, val_values), in_run(validation),
                               lrs=None if lrs is None else lrs.tolist())  # fmt: skip
    return validation.name, found


def analyze(
    path: str | Path,
    tag: str | None = None,
    horizon: int | None = None,
    target: float | None = None,
    *,
    mode: str | None = None,
    bounds: tuple[float | None, float | None] | None = None,
) -> Analysis:
    """Read the log at ``path``, forecast its loss (or ``tag``) at ``horizon`` and find its anomalies.

    Args:
        path: a TensorBoard log directory or event file, a CSVLogger ``metrics.csv``, or a CSV/JSONL file.
        tag: the series to analyse; by default the loss its owner would read (``choose_loss``).
        horizon: the step to forecast; by default the run's planned end from its own records (``planned_end``:
            curvecast's forecasts, ``max_steps`` or ``max_epochs`` in ``hparams.yaml``), else the last logged step,
            where the log itself gives the value and nothing is forecast.
        target: a value of the series to ask about (step reaching it, probability of ending better than it).
        mode: ``"min"`` or ``"max"``; by default read from the series' name, or from its values when the name says
            nothing (``metric_direction``: ``val_acc`` is better high, a loss low).
        bounds: the series' range ``(lo, hi)``, None for an open side; by default (0, 1) or (0, 100) for a
            fraction-like score (accuracy, F1, AUC, ...) whose values lie there, (-1, 1) for a correlation, else none.

    A series whose values are not finite (NaN, inf) is analysed all the same: each such value is an anomaly, and a
    series with too few finite values has a forecast that says so (``forecast.ok`` False).

    Raises:
        LogReadError: the log cannot be read, ``tag`` is not in it, or it has fewer than ``MIN_POINTS`` points.
        AnalyzeError: ``horizon`` lies before the last logged step, or ``target`` is not finite.
    """
    from curvecast.forecasting import Forecast, Forecaster
    from curvecast.forecasting.anomalies.auxiliary import as_note, beside_return_note
    from curvecast.forecasting.metric_map import check_mode_bounds

    log = read_log(path)
    curve = choose_loss(log, tag)
    _check_steps(curve, log)
    finite = int(np.isfinite(curve.values).sum())
    if finite < MIN_POINTS and finite == len(curve):
        raise LogReadError(
            f"Expected at least {MIN_POINTS} finite points in `{curve.name}` to forecast, but it has {finite} "
            f"({len(curve)} logged)"
        )
    last = int(curve.steps[-1])
    planned = planned_end(log, curve)
    given = horizon is not None
    if horizon is None:
        horizon = planned.step if planned is not None else last
    elif horizon < last:
        raise AnalyzeError(f"Expected `--horizon` to be at or after the last logged step {last}, but got {horizon}")
    if target is not None and not math.isfinite(target):
        raise AnalyzeError(f"Expected `--target` to be a finite number, but got {target}")
    lr = choose_lr(log, curve)
    lrs = lr_at_every_step(lr, horizon) if lr is not None else None
    try:
        check_mode_bounds(mode or "min", bounds)
    except ValueError as error:
        raise AnalyzeError(str(error)) from None
    direction = read_direction(curve.name, curve.values, mode, bounds)
    mode, bounds = direction.mode, direction.bounds
    try:
        if finite < MIN_POINTS:  # NaN or inf where the values should be: the anomalies tell, no forecast can
            reason = f"only {finite} of the {len(curve)} logged values are finite; a forecast needs {MIN_POINTS}"
            forecast = Forecast.failed(reason, horizon, last)
        else:
            forecast = Forecaster().fit(curve.steps, curve.values, horizon=horizon, lrs=lrs, mode=mode, bounds=bounds)
        anomalies, bucket = _detect(curve, lr, mode)
        if tag is None and mode == "min":  # the loss picked of a log that holds a return: an RL objective's loss
            returns = logged_returns(log)
            if returns:
                note = beside_return_note(returns[0], f"`--tag {shlex.quote(returns[0])}`")
                anomalies = [as_note(event, note) for event in anomalies]
        if mode == "min":  # a loss: its climb over which a logged weight of its objective moved is a note
            anomalies = _objective_changes(log, curve, anomalies)
        validation, overfitting = _overfitting(log, curve, lr, mode)
    except ValueError as error:  # both validate their inputs with ValueError; anything left here is about the log
        raise LogReadError(f"Cannot analyse `{printable(curve.name)}` of {log.source}: {error}") from None
    return Analysis(
        log, curve, lr, lrs is not None, horizon, target, forecast, anomalies, bucket, mode, bounds,
        direction.note, planned, given, validation, overfitting,
    )  # fmt: skip


def logged_returns(log: RunLog) -> list[str]:
    """The series of ``log`` that name an RL agent's return, with points."""
    return [name for name, curve in log.curves.items() if names_a_return(name) and len(curve)]


def _objective_changes(log: RunLog, curve: Curve, anomalies: list[Anomaly]) -> list[Anomaly]:
    """``anomalies`` of ``curve``, a loss, with each climb, instability warning or plateau over which a weight of the
    objective's terms logged beside it (``beta``, ``kl_weight``) moved as a note saying so, as a live run has them
    (``forecasting.anomalies.objective_change``)."""
    from curvecast.forecasting.anomalies.objective_change import as_objective_change

    coefficients = _coefficients(log, curve)
    if not coefficients:
        return anomalies
    return [as_objective_change(event, (curve.steps, curve.values), coefficients) for event in anomalies]


def _coefficients(log: RunLog, curve: Curve) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The steps and values of each series of ``log`` beside ``curve`` that names a weight of the objective's terms."""
    return {
        name: (logged.steps, logged.values)
        for name, logged in log.curves.items()
        if name != curve.name and len(logged) and names_a_coefficient(name)
    }


def _check_steps(curve: Curve, log: RunLog) -> None:
    """The forecaster counts steps from 0; a log starting below (a warm-up logged at negative steps) cannot be fit."""
    if len(curve) and curve.steps[0] < 0:
        raise LogReadError(
            f"Expected the steps of `{printable(curve.name)}` in {log.source} to be at least 0, but the first is "
            f"{curve.steps[0]}: the forecaster counts steps from 0"
        )
