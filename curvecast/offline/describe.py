"""What ``curvecast analyze`` prints of an ``Analysis``: the text report, and the JSON report of ``--json``.

Both say where the horizon came from. Past the last logged step they give the forecast there with its interval. At
the last logged step (no horizon asked for and none in the run's records, or a run that reached its planned end) the
log itself holds the value: they give it, with the fitted curve and how far logged values scatter about it, and no
forecast: the interval of a forecast is that of the smoothed curve, which one noisy logged value often lies outside.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from curvecast.logreaders.base import printable
from curvecast.offline.analysis import Analysis
from curvecast.render.text import anomaly_line, fmt, forecast_lines

if TYPE_CHECKING:
    from curvecast.forecasting import Anomaly

__all__ = ["analysis_to_dict", "describe_analysis", "horizon_line", "horizon_source"]

_MAX_LISTED = 20  # anomalies printed in the text report; the JSON report has them all
_MAX_NAME_CHARS = 200  # of a series name or path in the text report, escaped: a log must not drive the terminal
_LEVEL = 0.8  # of the interval and of the scatter printed


def _number(value: float | None) -> float | None:
    """JSON has no NaN or inf: they become null."""
    return float(value) if value is not None and math.isfinite(value) else None


def horizon_source(analysis: Analysis) -> str:
    """``"given"``, ``"planned"`` (the run's records) or ``"end of log"``: where the horizon came from."""
    if analysis.horizon_given:
        return "given"
    return "planned" if analysis.planned is not None else "end of log"


def horizon_line(analysis: Analysis) -> str:
    """One line: the step forecast to and where it came from, or that the log ends with nothing recorded past it."""
    horizon, last, planned = analysis.horizon, analysis.last_step, analysis.planned
    beyond = "--horizon STEP forecasts beyond it"
    if analysis.horizon_given:
        return f"  horizon: step {horizon}, as asked" + ("" if analysis.beyond_log else " (the last logged step)")
    if planned is None:
        return (
            f"  horizon: none in the run's records (max_steps, max_epochs, curvecast's forecasts): the log ends at "
            f"step {last}; {beyond}"
        )
    if not analysis.beyond_log:
        return f"  horizon: the run reached its planned end, step {horizon} ({planned.source}); {beyond}"
    return f"  horizon: step {horizon}, the run's planned end ({planned.source})"


def _end_of_log_lines(analysis: Analysis) -> list[str]:
    """The value the log holds at its last step, beside the fitted curve there and the scatter of logged values."""
    curve, forecast = analysis.curve, analysis.forecast
    lines = [f"  at step {analysis.last_step}, the end of the log: logged {fmt(curve.values[-1])}"]
    if forecast.ok:
        lo, hi, count = analysis.scatter(_LEVEL)
        lines[0] += f"; the fitted curve is at {fmt(forecast.final)} there"
        if count:
            lines[0] += f"; logged values scatter about it by {lo:+.3g} .. {hi:+.3g} ({_LEVEL:.0%} of the last {count})"
    else:
        lines[0] += f" (no fit: {forecast.reason})"
    if analysis.target is not None:
        reached = analysis.reached_at()
        finite = curve.values[np.isfinite(curve.values)]
        best = (finite.min() if analysis.mode == "min" else finite.max()) if finite.size else math.nan
        outlook = f"reached at step {reached}" if reached is not None else f"not reached in the log (best {fmt(best)})"
        lines.append(f"  target {fmt(analysis.target)}: {outlook}")
    return lines


def describe_analysis(analysis: Analysis, plot: str | None = None) -> str:
    """The text report printed by ``curvecast analyze``."""
    curve, forecast, target = analysis.curve, analysis.forecast, analysis.target
    source, name = printable(str(analysis.log.source), _MAX_NAME_CHARS), printable(curve.name, _MAX_NAME_CHARS)
    lines = [
        f"{source} ({analysis.log.kind}, {len(analysis.log.curves)} series)",
        f"  series: {name}, {len(curve):,} points, steps {curve.steps[0]}..{curve.steps[-1]}, "
        f"last value {fmt(curve.values[-1])}",
        f"  direction: {printable(analysis.direction, _MAX_NAME_CHARS)}" if analysis.direction else "",
    ]
    returns = analysis.returns if analysis.mode == "min" else []
    if returns:  # an RL run's owner reads its return; its loss grows with it
        ret = printable(returns[0], _MAX_NAME_CHARS)
        lines.append(f"  also logged: `{ret}`, an RL agent's return (`--tag {shlex.quote(ret)}` forecasts it)")
    weights = analysis.coefficients if analysis.mode == "min" else []
    if weights:  # a climb over which it moved is the objective changing: its alarms are notes
        weight = printable(weights[0], _MAX_NAME_CHARS)
        lines.append(f"  also logged: `{weight}`, a weight of the objective (a climb while it moves is a note)")
    if analysis.lr is None:
        lines.append("  learning rate: not logged")
    else:
        use = "used" if analysis.lr_used else f"not used: it ends at step {analysis.lr.steps[-1]}, before the horizon"
        lines.append(f"  learning rate: {printable(analysis.lr.name, _MAX_NAME_CHARS)} ({use})")
    lines.append(horizon_line(analysis))
    if analysis.beyond_log:
        lines.extend(forecast_lines(forecast, target, analysis.target_chance, analysis.reached_at(), level=_LEVEL))
    else:
        lines.extend(_end_of_log_lines(analysis))
    events = analysis.anomalies
    thinned = f" (searched on maxima of {analysis.anomaly_bucket} points)" if analysis.anomaly_bucket > 1 else ""
    lines.append(f"  anomalies{thinned}: {len(events) or 'none'}")
    # The first sentence says what happened; the advice that follows is in the JSON report.
    lines.extend(_listed(events, brief=lambda event: True))
    lines.extend(_overfitting_lines(analysis))
    if plot:
        lines.append(f"  plot: {printable(plot, _MAX_NAME_CHARS)}")
    return "\n".join(line for line in lines if line)


def _overfitting_lines(analysis: Analysis) -> list[str]:
    """The validation loss replayed beside a training loss, and its overfitting: the warning whole, as a live run
    has it (what to keep and how to stop such a run is its point), the later notes' first sentence."""
    if analysis.validation is None:
        return []
    events = analysis.overfitting
    name = printable(analysis.validation, _MAX_NAME_CHARS)
    lines = [f"  overfitting: `{name}`, the validation loss beside it, watched as live: {len(events) or 'none'}"]
    return lines + _listed(events, brief=lambda event: event.severity == "info")


def _listed(events: list[Any], brief: Callable[[Any], bool]) -> list[str]:
    """A line for each of the first ``_MAX_LISTED`` of ``events`` (its first sentence alone where ``brief``), and how
    many more there are."""
    lines = [anomaly_line(e, indent="    ", brief=brief(e)) for e in events[:_MAX_LISTED]]
    if len(events) > _MAX_LISTED:
        lines.append(f"    ... and {len(events) - _MAX_LISTED} more (all are in the --json report)")
    return lines


def analysis_to_dict(analysis: Analysis, plot: str | None = None) -> dict[str, Any]:
    """The machine-readable report (what ``--json`` prints).

    ``forecast`` holds ``final``, the fitted curve at the horizon, and past the last logged step (``beyond_log``) its
    intervals and the target's chances; at the last logged step instead ``observed`` (the logged value),
    ``scatter_80`` (the central 80% of the latest logged values' differences from the fit) and ``reached_at``, which a
    forecast past the log carries too (with ``step_to_reach`` the step the log reached the target at, when it did).
    ``overfitting``: the validation loss replayed beside a training loss (``series``) and what a live run would have
    said of it (``anomalies``), or null when none was (the series analysed is no training loss, or has none beside it).
    """
    curve, forecast, target = analysis.curve, analysis.forecast, analysis.target
    finite = curve.values[np.isfinite(curve.values)]
    planned = analysis.planned
    report: dict[str, Any] = {
        "source": str(analysis.log.source),
        "format": analysis.log.kind,
        "series": {
            "name": curve.name,
            "points": len(curve),
            "first_step": int(curve.steps[0]),
            "last_step": int(curve.steps[-1]),
            "last_value": _number(curve.values[-1]),
            "min_value": _number(finite.min()) if finite.size else None,
        },
        "lr": {"name": analysis.lr.name if analysis.lr else None, "used": analysis.lr_used},
        "horizon": analysis.horizon,
        "horizon_source": horizon_source(analysis),
        "planned_end": None if planned is None else {"step": planned.step, "source": planned.source},
        "target": target,
        "mode": analysis.mode,
        "bounds": None if analysis.bounds is None else [_number(b) for b in analysis.bounds],
        "direction": analysis.direction,
        "forecast": {
            "ok": bool(forecast.ok),
            "reason": forecast.reason,
            "model": forecast.model,
            "beyond_log": analysis.beyond_log,
        },
        "anomalies": [_anomaly_dict(event) for event in analysis.anomalies],
        "anomaly_bucket": analysis.anomaly_bucket,
        "overfitting": None if analysis.validation is None else {
            "series": analysis.validation,
            "anomalies": [_anomaly_dict(event) for event in analysis.overfitting],
        },
        "series_available": analysis.log.names,
        "plot": plot,
    }
    if not analysis.beyond_log:
        lo, hi, _count = analysis.scatter(_LEVEL)
        report["forecast"].update(
            final=_number(forecast.final), observed=_number(curve.values[-1]), scatter_80=[_number(lo), _number(hi)]
        )
        if target is not None:
            report["forecast"]["reached_at"] = analysis.reached_at()
    elif forecast.ok:
        lo80, hi80 = forecast.interval(0.8)
        lo95, hi95 = forecast.interval(0.95)
        report["forecast"].update(
            final=_number(forecast.final),
            interval_80=[_number(lo80), _number(hi80)],
            interval_95=[_number(lo95), _number(hi95)],
        )
        if target is not None:
            reached = analysis.reached_at()  # a target the log reached already is not forecast to be reached later
            report["forecast"].update(
                reached_at=reached,
                step_to_reach=reached if reached is not None else forecast.step_to_reach(target),
                prob_below=_number(forecast.prob_below(target)),
                prob_better=_number(analysis.target_chance),  # below for a loss, above for a score
            )
    return report


def _anomaly_dict(event: Anomaly) -> dict[str, Any]:
    return {
        "series": event.series,
        "kind": event.kind,
        "step": int(event.step),
        "severity": event.severity,
        "message": event.message,
        "score": _number(event.score),
        "value": _number(event.value),
    }
