"""Plain-text rendering of a Report, for the terminal and for logs."""

from __future__ import annotations

import math

from curvecast.forecasting.report import Report

__all__ = ["describe_report"]


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def describe_report(report: Report, level: float = 0.8) -> str:
    """A few lines: what was observed, the forecast at the horizon with its interval, the target outlook, the
    anomalies."""
    head = f"{report.monitor} at step {report.step}" + (f" of {report.horizon}" if report.horizon else "")
    if report.observed is not None:
        head += f": {_fmt(report.observed)} (best {_fmt(report.best)})"
    lines = [head]
    forecast = report.forecast
    if forecast is None:
        lines.append("  forecast: none (the run length is unknown)")
    elif not forecast.ok:
        lines.append(f"  forecast: none ({forecast.reason})")
    else:
        lo, hi = forecast.interval(level)
        interval = f"{level:.0%} interval {_fmt(lo)} .. {_fmt(hi)}"
        lines.append(f"  forecast at step {forecast.horizon}: {_fmt(forecast.final)} ({interval})")
    if report.target is not None and (report.reached_at is not None or (forecast is not None and forecast.ok)):
        lines.append(f"  target {_fmt(report.target)}: {_target_outlook(report)}")
    schedule = "known" if report.lr_schedule_known else "unknown"
    lines.append(f"  LR schedule: {schedule}" + ("; an LR drop lies ahead" if report.lr_drop_ahead else ""))
    for anomaly in report.anomalies:
        lines.append(f"  [{anomaly.severity}] {anomaly.kind} at step {anomaly.step}: {anomaly.message}")
    return "\n".join(lines)


def _target_outlook(report: Report) -> str:
    """When the target was or will be reached, and the chance the run ends on the right side of it."""
    forecast, lower_is_better = report.forecast, report.mode == "min"
    parts = []
    if report.reached_at is not None:
        parts.append(f"reached at step {report.reached_at}")
    elif forecast is not None and forecast.ok and lower_is_better:
        reach = forecast.step_to_reach(report.target)
        parts.append(f"forecast to be reached near step {reach}" if reach is not None else "not reached by the horizon")
    if forecast is not None and forecast.ok:
        below = forecast.prob_below(report.target)
        side = "below" if lower_is_better else "above"
        parts.append(f"chance to end {side} it {below if lower_is_better else 1.0 - below:.2f}")
    return "; ".join(parts)
