"""Plain-text rendering of a Report, for the terminal and for logs."""

from __future__ import annotations

import math

from curvecast.forecasting.report import Report

__all__ = ["describe_report"]


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def describe_report(report: Report, level: float = 0.8) -> str:
    """A few lines: the forecast at the horizon with its interval, the target outlook, the anomalies."""
    lines = [f"{report.monitor} at step {report.step}" + (f" of {report.horizon}" if report.horizon else "")]
    forecast = report.forecast
    if forecast is None:
        lines.append("  forecast: none (the run length is unknown)")
    elif not forecast.ok:
        lines.append(f"  forecast: none ({forecast.reason})")
    else:
        lo, hi = forecast.interval(level)
        lines.append(
            f"  forecast at step {forecast.horizon}: {_fmt(forecast.final)} "
            f"({level:.0%} interval {_fmt(lo)} .. {_fmt(hi)}; model: {forecast.model})"
        )
        if report.target is not None:
            reach = forecast.step_to_reach(report.target)
            when = f"reached near step {reach}" if reach is not None else "not reached by the horizon"
            lines.append(
                f"  target {_fmt(report.target)}: {when}, P(final < target) = {forecast.prob_below(report.target):.2f}"
            )
    schedule = "known" if report.lr_schedule_known else "unknown"
    lines.append(f"  LR schedule: {schedule}" + ("; an LR drop lies ahead" if report.lr_drop_ahead else ""))
    for anomaly in report.anomalies:
        lines.append(f"  [{anomaly.severity}] {anomaly.kind} at step {anomaly.step}: {anomaly.message}")
    return "\n".join(lines)
