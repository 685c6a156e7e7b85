"""forecast_figure: one matplotlib figure of a curve and its forecast (fit, forecast, band, target, anomalies).

The TensorBoard reporter writes it as an image (``figures=True``) and ``curvecast analyze`` saves it as a PNG: both
draw the same chart, with the band the curvecast tab draws too (:mod:`curvecast.render.band`). A curve whose positive
values span more than ``LOG_SCALE_DECADES`` decades (a loss falling 10,000-fold) is drawn on a log axis, where its
late steps stay readable. A forecast at the last observed step is drawn as the fit alone: no interval is drawn there,
where the observed value is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from curvecast.render.band import forecast_band

__all__ = ["LOG_SCALE_DECADES", "as_plain_text", "envelope", "forecast_figure", "wants_log_scale"]

LOG_SCALE_DECADES = 2.0  # positive values spanning more decades than this are drawn on a log axis

_MAX_DRAWN = 2000  # buckets drawn for a long curve: matplotlib takes seconds on a million points
_MAX_LABEL_CHARS = 100  # of a series name or path in the figure: a longer one would push the axes out of it
_FEW_ANOMALIES = 10  # vertical lines help find a few events, but bury many
_SEVERITY_COLOURS = {"info": "tab:blue", "warning": "tab:orange", "critical": "tab:red"}


def forecast_figure(
    steps: np.ndarray,
    values: np.ndarray,
    forecast: Any,
    *,
    target: float | None = None,
    interval: float = 0.8,
    title: str | None = None,
    label: str | None = None,
    anomalies: Sequence[Any] = (),
    size: tuple[float, float] = (6.4, 4.0),
    dpi: int = 80,
    log_scale: bool | None = None,
):
    """A figure of the observed curve with the forecast to its horizon.

    The forecast's interval is known at the horizon only; the shaded band narrows linearly (in log space) from that
    interval to zero width at the last observed step, and the legend says so.

    Args:
        steps, values: the observed curve.
        forecast: a :class:`~curvecast.forecasting.Forecast`; one that is not ``ok`` draws the curve alone and says
            why in the title.
        target: drawn as a horizontal line, with the forecast step to reach it if there is one.
        interval: the probability of the central interval drawn at the horizon.
        title: the figure title (drawn verbatim: see :func:`as_plain_text`).
        label: the series' name, on the y axis and in the legend.
        anomalies: anomalies (``step``, ``severity``, ``value``) drawn as markers at their values.
        size, dpi: the figure's size in inches and its resolution.
        log_scale: draw the y axis in log scale; None (the default) decides from the values (``wants_log_scale``).

    Returns:
        A ``matplotlib.figure.Figure`` built without pyplot (no global state, safe off the main thread).
    """
    from matplotlib.figure import Figure

    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    name = as_plain_text(label or "metric")
    fig = Figure(figsize=size, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    log_scale = wants_log_scale(values) if log_scale is None else log_scale
    if log_scale:
        ax.set_yscale("log")
    drawn_steps, drawn_values = envelope(steps, values)
    ax.plot(drawn_steps, drawn_values, color="0.55", lw=0.8, label=name)
    if forecast.ok:
        _draw_forecast(ax, steps, forecast, interval)
    if target is not None and math.isfinite(target) and (target > 0 or not log_scale):
        ax.axhline(target, color="tab:red", lw=1.0, ls=":", label=f"target {target:.4g}")
        reach = forecast.step_to_reach(target)
        if reach is not None:
            ax.axvline(reach, color="tab:red", lw=0.8, alpha=0.6, label=f"forecast to reach it at step {reach}")
    _set_limits(ax, values, forecast, target, interval, log_scale)
    _draw_anomalies(ax, anomalies)
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    if title is None:
        title = f"{name} forecast at step {forecast.horizon}, made at step {forecast.last_step}"
    summary = _summary(forecast, interval)
    ax.set_title(f"{as_plain_text(title)}\n{summary}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def wants_log_scale(values: np.ndarray) -> bool:
    """Whether the finite values are all positive and span more than ``LOG_SCALE_DECADES`` decades.

    Example::

        >>> wants_log_scale(np.array([5.0, 0.5, 0.0005])), wants_log_scale(np.array([5.0, 0.5, 0.06]))
        (True, False)
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size < 2 or finite.min() <= 0.0:
        return False
    return bool(np.log10(finite.max() / finite.min()) > LOG_SCALE_DECADES)


def envelope(steps: np.ndarray, values: np.ndarray, buckets: int = _MAX_DRAWN) -> tuple[np.ndarray, np.ndarray]:
    """Thin a long curve for drawing, keeping each bucket's minimum and maximum so that spikes stay visible."""
    finite = np.isfinite(values)
    steps, values = steps[finite], values[finite]
    if len(steps) <= 2 * buckets:
        return steps, values
    edges = np.linspace(0, len(steps), buckets + 1).astype(np.int64)[:-1]
    low = np.minimum.reduceat(values, edges)
    high = np.maximum.reduceat(values, edges)
    middle = steps[np.minimum(edges + np.diff(np.r_[edges, len(steps)]) // 2, len(steps) - 1)]
    # Draw min then max at each bucket's middle step: the line sweeps the bucket's whole range.
    return np.repeat(middle, 2), np.column_stack([low, high]).reshape(-1)


def as_plain_text(text: str) -> str:
    """``text`` (a series name, a path) as matplotlib draws it verbatim.

    Matplotlib reads ``$...$`` as mathtext and raises on what does not parse (a tag like ``$x^$``), so each ``$`` is
    escaped; a legend drops labels starting with ``_``, so such a name gets a leading space; a long one loses its
    middle (the end of a path, or of a tag, tells most).

    Example::

        >>> as_plain_text("$x^$loss"), as_plain_text("_hidden")
        ('\\\\$x^\\\\$loss', ' _hidden')
    """
    if len(text) > _MAX_LABEL_CHARS:
        half = (_MAX_LABEL_CHARS - 3) // 2
        text = text[:half] + "..." + text[-half:]
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _draw_forecast(ax: Any, steps: np.ndarray, forecast: Any, interval: float) -> None:
    # An int past 2**63 (a horizon given on the command line) overflows matplotlib's C conversions: floats here.
    last, horizon = float(forecast.last_step), float(forecast.horizon)
    first = float(steps[0]) if len(steps) else last
    start = first + 0.1 * (last - first)  # the fit skips the early transient: drawn from a tenth of the way in
    fit_steps = np.linspace(start, last, 200)
    ahead = np.linspace(last, max(horizon, last), 200)
    ax.plot(fit_steps, forecast.predict(fit_steps), color="tab:blue", lw=1.5, label="fit")
    if horizon <= last:  # nothing ahead: the observed value is known there, and no interval is drawn
        return
    ax.plot(ahead, forecast.predict(ahead), color="tab:blue", lw=1.5, ls="--", label=f"forecast to step {horizon:.0f}")
    band = forecast_band(forecast, ahead, interval)
    if band is not None:
        ax.fill_between(
            ahead, band[1], band[2], color="tab:blue", alpha=0.18, lw=0,
            label=f"{interval:.0%} interval at the horizon (narrowed linearly back to the last step)",
        )  # fmt: skip
    lo, hi = forecast.interval(interval)
    final = float(forecast.final)
    if all(math.isfinite(x) for x in (lo, hi, final)):
        ax.errorbar([horizon], [final], yerr=[[final - lo], [hi - final]], color="tab:blue", capsize=4)


def _summary(forecast: Any, interval: float) -> str:
    if not forecast.ok:
        return as_plain_text(f"no forecast: {forecast.reason}")
    if forecast.horizon <= forecast.last_step:
        return f"fit {float(forecast.final):.4g} at step {forecast.horizon}, the last observed step"
    lo, hi = forecast.interval(interval)
    final = float(forecast.final)
    return f"forecast {final:.4g}, {interval:.0%} interval {lo:.4g} to {hi:.4g}, at step {forecast.horizon}"


def _draw_anomalies(ax: Any, anomalies: Sequence[Any]) -> None:
    seen: set[str] = set()
    top = ax.get_ylim()[1]
    few = len(anomalies) <= _FEW_ANOMALIES
    for event in anomalies:
        colour = _SEVERITY_COLOURS.get(event.severity, "tab:purple")
        label = f"{event.severity} anomaly" if event.severity not in seen else None
        seen.add(event.severity)
        if few or event.severity == "critical":
            ax.axvline(event.step, color=colour, lw=0.8, alpha=0.5)
        value = getattr(event, "value", None)
        y = value if value is not None and math.isfinite(value) else top
        ax.scatter([event.step], [y], color=colour, marker="x", s=30, zorder=5, label=label)


def _set_limits(
    ax: Any, values: np.ndarray, forecast: Any, target: float | None, interval: float, log_scale: bool = False
) -> None:
    """Zoom on the bulk of the curve: a divergence or one huge spike would otherwise flatten everything else (on a
    log axis, the whole curve: it keeps every decade readable)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    if len(finite) > 20 and not log_scale:
        finite = finite[len(finite) // 20 :]  # the first steps of a loss curve sit far above the rest
    low, high = np.percentile(finite, [0.5, 99.5]) if not log_scale else (finite.min(), finite.max())
    extra = [target] if target is not None else []
    if forecast.ok and forecast.horizon > forecast.last_step:
        extra.extend(forecast.interval(interval))
    extra = [x for x in extra if math.isfinite(x) and (x > 0 or not log_scale)]
    low, high = min([low, *extra]), max([high, *extra])
    if log_scale:
        ax.set_ylim(low / 1.25, high * 1.25)
        return
    pad = 0.05 * (high - low or abs(high) or 1.0)
    ax.set_ylim(low - pad, high + pad)
