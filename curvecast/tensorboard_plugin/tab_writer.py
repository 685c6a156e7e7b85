"""TabWriter: writes a live run's data for TensorBoard's curvecast tab into the run's own event file.

The reporter decides when (a forecast, anomalies, a new planned schedule); this module decides what each document
holds (see :mod:`curvecast.tensorboard_plugin.summary`). It writes through the ``SummaryWriter`` the Trainer's
TensorBoard logger already has, so the documents sit in the run itself and the run selector lists no sub-run.
Numpy only: neither torch nor Lightning.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curvecast.tensorboard_plugin.band import forecast_band
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, PLANNED_LR_TAG, json_summary, rounded

__all__ = ["TabWriter"]

_PLANNED_LR_POINTS = 200  # samples of the planned schedule: a warmup of 1% of the run still gets two of them
_EVENTS_KEPT = 50  # anomalies in each events document (the most recent ones)
_MESSAGE_CHARS = 300  # an anomaly's message in the tab is cut here: the alert text has the whole of it


class TabWriter:
    """The curvecast tab's documents of one run.

    Args:
        interval: probability of the band drawn around the forecast curve.
        curve_points: points of each forecast curve.
    """

    def __init__(self, interval: float = 0.8, curve_points: int = 50) -> None:
        self.interval = interval
        self.curve_points = curve_points
        self._planned_lr: list[float | None] | None = None  # the planned LR last written
        self._anomalies: dict[tuple[str, str, int, str], dict[str, Any]] = {}  # the recent ones, oldest first
        self._last_events_step = -1

    def start(self) -> None:
        """A new fit or a new writer: the next planned schedule is written again."""
        self._planned_lr = None

    def write_forecast(self, writer: Any, report: Any, scalars: dict[str, float], mode: str = "min") -> None:
        """The forecast of ``report``: its curve from the last observed step to the horizon with the band, the
        final value and interval, the target and the chance of reaching it (``scalars`` as the reporter wrote them).
        """
        forecast = report.forecast
        start, horizon = int(forecast.last_step), int(forecast.horizon)
        steps = np.unique(np.linspace(start, max(horizon, start), self.curve_points).round().astype(int))
        band = forecast_band(forecast, steps, self.interval)
        mean = np.asarray(forecast.predict(steps), dtype=np.float64) if band is None else band[0]
        document = {
            "step": int(report.step),
            "monitor": str(report.monitor),
            "mode": mode,
            "horizon": horizon,
            "last_step": start,
            "interval": float(self.interval),
            "final": _number(scalars.get("final")),
            "final_lo": _number(scalars.get("final_lo")),
            "final_hi": _number(scalars.get("final_hi")),
            "target": _number(report.target),
            "prob_target": _number(scalars.get("prob_target")),
            "step_to_target": _number(scalars.get("step_to_target")),
            "reached_at": None if report.reached_at is None else int(report.reached_at),
            "curve": {
                "steps": steps.tolist(),
                "mean": rounded(mean),
                "lo": None if band is None else rounded(band[1]),
                "hi": None if band is None else rounded(band[2]),
            },
        }
        _add_document(writer, FORECAST_TAG, document, report.step)

    def write_planned_lr(self, writer: Any, report: Any, schedule: Any) -> None:
        """The planned LR over ``0..horizon`` when it is first known or has changed (the capture drops a schedule
        found changed by hand): one document per schedule, not one per report."""
        if schedule is None:
            return
        horizon = int(schedule.horizon)
        steps = np.unique(np.linspace(0, horizon, min(_PLANNED_LR_POINTS, horizon + 1)).round().astype(int))
        lrs = rounded(schedule.lr(int(step)) for step in steps)
        if lrs == self._planned_lr:
            return
        self._planned_lr = lrs
        _add_document(writer, PLANNED_LR_TAG, {"horizon": horizon, "steps": steps.tolist(), "lrs": lrs}, report.step)

    def write_anomalies(self, writer: Any, report: Any) -> None:
        """The run's recent anomalies, when ``report`` brings new ones (or escalations), all in one document."""
        added = False
        for anomaly in report.anomalies:
            key = (str(anomaly.kind), str(getattr(anomaly, "series", "")), int(anomaly.step), str(anomaly.severity))
            if key in self._anomalies:
                continue
            added = True
            self._anomalies[key] = {
                "kind": key[0],
                "series": key[1],
                "step": key[2],
                "severity": key[3],
                "message": str(anomaly.message)[:_MESSAGE_CHARS],
            }
        while len(self._anomalies) > _EVENTS_KEPT:
            del self._anomalies[next(iter(self._anomalies))]
        if added:
            # Each document at a later step than the one before (an anomaly can be reported at an earlier step than
            # the last one): the latest document is then also the last by step, whichever loader sorts them.
            step = max(int(report.step), self._last_events_step + 1)
            self._last_events_step = step
            _add_document(writer, EVENTS_TAG, {"anomalies": list(self._anomalies.values())}, step)


    def state_dict(self) -> dict[str, Any]:
        """The recent anomalies (plain types), so that a resumed run's tab still lists those before the resume."""
        return {"anomalies": [dict(a) for a in self._anomalies.values()], "last_events_step": self._last_events_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        anomalies = {}
        for a in state["anomalies"][-_EVENTS_KEPT:]:
            entry = {k: str(a[k]) for k in ("kind", "series", "severity", "message")}
            entry["step"] = int(a["step"])
            anomalies[(entry["kind"], entry["series"], entry["step"], entry["severity"])] = entry
        self._anomalies = anomalies
        self._last_events_step = int(state["last_events_step"])


def _add_document(writer: Any, tag: str, document: dict[str, Any], step: int) -> None:
    """One document into the writer's own event file, at ``step``."""
    file_writer = writer._get_file_writer() if hasattr(writer, "_get_file_writer") else writer.file_writer
    file_writer.add_summary(json_summary(tag, document), int(step))


def _number(value: Any) -> float | None:
    """A finite float for a JSON document, else None (JSON has no nan)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
