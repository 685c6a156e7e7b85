"""Text of a forecast: the one-line form live logging prints, and the few lines of the demo and ``curvecast analyze``.

Every place that shows a forecast in words calls these, so a number, an interval or a target outlook reads the same
in the training log, the demo and ``analyze``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types alone: `curvecast --help` and `analyze`'s start-up do not load the forecaster for text
    from curvecast.forecasting.forecast import Forecast
    from curvecast.forecasting.report import Report

__all__ = ["anomaly_line", "describe_report", "ended_line", "fmt", "forecast_lines", "forecast_line"]


def fmt(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, or ``n/a`` when it is None or not finite.

    Example::

        >>> fmt(2.04567), fmt(None), fmt(float("nan")), fmt(0.123, 2)
        ('2.046', 'n/a', 'n/a', '0.12')
    """
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def forecast_line(report: Report, interval: float = 0.8) -> str:
    """One line for a report that carries a forecast, as live logging prints it::

        curvecast step 300/1000: loss 2.41 (best 2.38) -> 2.05 at step 1000 (80%: 1.98..2.12); target 2.1: P=0.71
    """
    forecast = report.forecast
    lo, hi = forecast.interval(interval)
    where = f"step {report.step}" + (f"/{report.horizon}" if report.horizon else "")
    seen = f" {fmt(report.observed)} (best {fmt(report.best)})" if report.observed is not None else ""
    text = (
        f"curvecast {where}: {report.monitor}{seen} -> {fmt(forecast.final)} at step {forecast.horizon} "
        f"({interval:.0%}: {fmt(lo)}..{fmt(hi)})"
    )
    if report.target is not None:
        chance = math.nan if report.target_chance is None else report.target_chance
        if report.reached_at is not None:  # reached already: no step to forecast
            when = f", reached at step {report.reached_at}"
        else:
            reach = forecast.step_to_reach(report.target)
            when = f", near step {reach}" if reach else ""
        text += f"; target {fmt(report.target)}: P={chance:.2f}{when}"
    return text


def ended_line(report: Report) -> str:
    """One line for the last report of a run that something other than curvecast stopped before its planned end
    (``report.ended_by``): where it ended, what stopped it, and the last and best values it reached. No forecast: the
    run will not reach the horizon::

        curvecast: the run ended at step 59 of 800, stopped before its planned end by EarlyStopping at epoch 2 (...);
        loss 0.158 (best 0.0711)
    """
    planned = f" of {report.horizon}" if report.horizon else ""
    text = f"curvecast: the run ended at step {report.stop_step}{planned}, stopped before its planned end by "
    text += report.ended_by or "another callback"
    if report.observed is not None:
        text += f"; {report.monitor} {fmt(report.observed)} (best {fmt(report.best)})"
    if report.target is not None:
        reached = f"reached at step {report.reached_at}" if report.reached_at is not None else "not reached"
        text += f"; target {fmt(report.target)}: {reached}"
    return text


def forecast_lines(
    forecast: Forecast | None,
    target: float | None = None,
    chance: float | None = None,
    reached_at: int | None = None,
    level: float = 0.8,
    indent: str = "  ",
) -> list[str]:
    """The forecast at its horizon with its interval (or why there is none), then the target's outlook: when it was
    or will be reached, and ``chance``, the chance the metric ends on the good side of it (as the brain gave it)."""
    if forecast is None:
        lines = [f"{indent}forecast: none (the run length is unknown)"]
    elif not forecast.ok:
        lines = [f"{indent}forecast at step {forecast.horizon}: none ({forecast.reason})"]
    else:
        lo, hi = forecast.interval(level)
        interval = f"{level:.0%} interval {fmt(lo)} .. {fmt(hi)}"
        lines = [f"{indent}forecast at step {forecast.horizon}: {fmt(forecast.final)} ({interval})"]
    usable = forecast is not None and forecast.ok
    if target is not None and (reached_at is not None or usable):
        lines.append(f"{indent}target {fmt(target)}: {_target_outlook(forecast, target, chance, reached_at)}")
    return lines


def anomaly_line(anomaly: Any, indent: str = "  ", brief: bool = False) -> str:
    """``[severity] kind at step N: message``; ``brief`` keeps the message's first sentence (what happened)."""
    message = anomaly.message.split(". ")[0] if brief else anomaly.message
    return f"{indent}[{anomaly.severity}] {anomaly.kind} at step {anomaly.step}: {message}"


def describe_report(report: Report, level: float = 0.8) -> str:
    """A few lines: what was observed, the forecast at the horizon with its interval, the target outlook, the
    anomalies."""
    head = f"{report.monitor} at step {report.step}" + (f" of {report.horizon}" if report.horizon else "")
    if report.observed is not None:
        head += f": {fmt(report.observed)} (best {fmt(report.best)})"
    if report.ended_by is not None:  # ended short of the horizon: what it reached, no forecast
        lines = [head, "  " + ended_line(report).removeprefix("curvecast: ")]
    else:
        lines = [head, *forecast_lines(report.forecast, report.target, report.target_chance, report.reached_at, level)]
    schedule = "known" if report.lr_schedule_known else "unknown"
    lines.append(f"  LR schedule: {schedule}" + ("; an LR drop lies ahead" if report.lr_drop_ahead else ""))
    lines.extend(anomaly_line(anomaly) for anomaly in report.anomalies)
    return "\n".join(lines)


def _target_outlook(forecast: Forecast | None, target: float, chance: float | None, reached_at: int | None) -> str:
    """When the target was or will be reached, and the chance the run ends on the right side of it."""
    usable = forecast is not None and forecast.ok
    parts = []
    if reached_at is not None:
        parts.append(f"reached at step {reached_at}")
    elif usable:
        reach = forecast.step_to_reach(target)
        parts.append(f"forecast to be reached near step {reach}" if reach is not None else "not reached by the horizon")
    if usable and chance is not None:
        parts.append(f"chance to end {'below' if forecast.mode == 'min' else 'above'} it {chance:.2f}")
    return "; ".join(parts)
