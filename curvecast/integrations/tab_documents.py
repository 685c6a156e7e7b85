"""The curvecast tab's documents of a live run: what each holds (see :mod:`curvecast.tensorboard_plugin.summary`).

Pure builders from a :class:`~curvecast.forecasting.Report`: the TensorBoard reporter decides when and writes them
into the run's own event file (the run selector lists no sub-run). Numpy only: neither torch nor Lightning.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curvecast.forecasting.report import Report
from curvecast.forecasting.schedule import LRSchedule
from curvecast.render.band import forecast_band
from curvecast.state_checks import MAX_WHOLE, checked_mapping, checked_str, checked_whole, require_keys
from curvecast.tensorboard_plugin.summary import rounded

__all__ = ["RecentAnomalies", "ended_document", "forecast_document", "planned_lr_document"]

_PLANNED_LR_POINTS = 200  # samples of the planned schedule: a warmup of 1% of the run still gets two of them
_EVENTS_KEPT = 50  # anomalies in each events document (the most recent ones)
_MESSAGE_CHARS = 300  # an anomaly's message in the tab is cut here: the alert text has the whole of it


def forecast_document(report: Report, scalars: dict[str, float], interval: float, curve_points: int) -> dict[str, Any]:
    """The forecast of ``report``: its curve from the last observed step to the horizon with the band, the final
    value and interval, the target and the chance of reaching it (``scalars`` as the reporter wrote them), the
    observed and best values at the last observed step, and the
    spread of the final value (``log_scale``, ``worse_scale`` and ``base``: a
    :class:`~curvecast.forecasting.ranking.FinalDistribution`)
    from which the tab's comparison gives each run its chance to end best, as ``curvecast analyze DIR`` does."""
    forecast = report.forecast
    start, horizon = int(forecast.last_step), int(forecast.horizon)
    steps = np.unique(np.linspace(start, max(horizon, start), curve_points).round().astype(int))
    band = forecast_band(forecast, steps, interval)
    mean = np.asarray(forecast.predict(steps), dtype=np.float64) if band is None else band[0]
    return {
        **_report_fields(report, interval),
        "horizon": horizon,
        "last_step": start,
        "final": _number(scalars.get("final")),
        "final_lo": _number(scalars.get("final_lo")),
        "final_hi": _number(scalars.get("final_hi")),
        "log_scale": _number(forecast.log_scale),
        "worse_scale": _number(forecast.worse_scale),
        "base": _number(forecast.mapping.base),
        "prob_target": _number(scalars.get("prob_target")),
        "step_to_target": _number(scalars.get("step_to_target")),
        "curve": {
            "steps": steps.tolist(),
            "mean": rounded(mean),
            "lo": None if band is None else rounded(band[1]),
            "hi": None if band is None else rounded(band[2]),
        },
    }


def ended_document(report: Report, interval: float) -> dict[str, Any]:
    """The forecast document of a run stopped before its planned end by something other than curvecast
    (``report.ended_by``): the tab's latest document then says where the run ended (``ended_at``, ``ended_by``) and
    what it reached, with no forecast curve: ``final`` is the last observed value (what the comparison of runs ranks
    it by) and no spread is given, as the run will not reach ``horizon``, its planned end."""
    return {
        **_report_fields(report, interval),
        "horizon": None if report.horizon is None else int(report.horizon),
        "last_step": int(report.step),
        "final": _number(report.observed),
        "ended_at": int(report.stop_step),
        "ended_by": str(report.ended_by)[:_MESSAGE_CHARS],
        "curve": {"steps": [], "mean": [], "lo": None, "hi": None},
    }


def _report_fields(report: Report, interval: float) -> dict[str, Any]:
    """What every forecast document says of the run at ``report``: where it stands, against what."""
    return {
        "step": int(report.step),
        "monitor": str(report.monitor),
        "mode": report.mode,
        "interval": float(interval),
        "observed": _number(report.observed),
        "best": _number(report.best),
        "target": _number(report.target),
        "reached_at": None if report.reached_at is None else int(report.reached_at),
    }


def planned_lr_document(schedule: LRSchedule) -> dict[str, Any]:
    """The planned LR over ``0..horizon``, sampled."""
    horizon = int(schedule.horizon)
    steps = np.unique(np.linspace(0, horizon, min(_PLANNED_LR_POINTS, horizon + 1)).round().astype(int))
    return {"horizon": horizon, "steps": steps.tolist(), "lrs": rounded(schedule.lr(int(step)) for step in steps)}


class RecentAnomalies:
    """The run's most recent anomalies, as the tab's events document lists them (all of them in each document)."""

    def __init__(self) -> None:
        self._anomalies: dict[tuple[str, str, int, str], dict[str, Any]] = {}  # the recent ones, oldest first
        self.last_step = -1  # the step of the last events document written

    def add(self, anomalies: tuple[Any, ...]) -> dict[str, Any] | None:
        """Take ``anomalies``; the events document when some are new (or escalations), else None."""
        added = False
        for anomaly in anomalies:
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
                "value": _number(getattr(anomaly, "value", None)),  # where the tab draws it: the series' own value
            }
        while len(self._anomalies) > _EVENTS_KEPT:
            del self._anomalies[next(iter(self._anomalies))]
        return {"anomalies": list(self._anomalies.values())} if added else None

    def state_dict(self) -> dict[str, Any]:
        """The recent anomalies (plain types), so that a resumed run's tab still lists those before the resume."""
        return {"anomalies": [dict(a) for a in self._anomalies.values()], "last_events_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a damaged one raises ``KeyError``, ``TypeError`` or
        ``ValueError`` naming the field, and changes nothing."""
        state = checked_mapping("the RecentAnomalies state", state)
        require_keys("the RecentAnomalies state", state, ("anomalies", "last_events_step"))
        saved = state["anomalies"]
        if not isinstance(saved, list):
            raise TypeError(f"Expected `RecentAnomalies.anomalies` to be a list, but got {type(saved).__name__}")
        anomalies = {}
        for i, a in enumerate(saved[-_EVENTS_KEPT:]):
            where = f"`RecentAnomalies.anomalies[{i}]`"
            a = checked_mapping(where, a)
            require_keys(where, a, ("kind", "series", "step", "severity", "message"))
            entry: dict[str, Any] = {k: checked_str(f"{where}[{k!r}]", a[k]) for k in ("kind", "series", "severity")}
            entry["message"] = checked_str(f"{where}['message']", a["message"])[:_MESSAGE_CHARS]
            entry["step"] = checked_whole(f"{where}['step']", a["step"])
            entry["value"] = _saved_value(f"{where}['value']", a.get("value"))  # absent in states saved before it
            anomalies[(entry["kind"], entry["series"], entry["step"], entry["severity"])] = entry
        last_step = checked_whole("`RecentAnomalies.last_events_step`", state["last_events_step"], low=-1,
                                  high=MAX_WHOLE - 1)  # fmt: skip
        self._anomalies = anomalies
        self.last_step = last_step


def _saved_value(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected {where} to be a number or None, but got {type(value).__name__}")
    return _number(value)


def _number(value: Any) -> float | None:
    """A finite float for a JSON document, else None (JSON has no nan)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
