"""forecast_figure: one matplotlib figure of a forecast (observed curve, fit, forecast, interval, target)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curvecast.tensorboard_plugin.band import forecast_band

__all__ = ["forecast_figure"]

# Points drawn for the observed curve: matplotlib's cost grows with points, and more are not visible at 6 inches.
_MAX_PLOTTED = 2000


def forecast_figure(
    steps: np.ndarray,
    values: np.ndarray,
    forecast: Any,
    target: float | None = None,
    interval: float = 0.8,
    title: str | None = None,
):
    """A figure of the observed curve with the forecast to its horizon.

    The forecast's interval is known at the horizon only; the shaded band narrows linearly (in log space) from that
    interval to zero width at the last observed step, and the legend says so.

    Args:
        steps, values: the observed curve.
        forecast: a :class:`~curvecast.forecasting.Forecast` (``ok`` True).
        target: drawn as a horizontal line, with the forecast step to reach it if there is one.
        interval: the probability of the central interval drawn at the horizon.
        title: the figure title.

    Returns:
        A ``matplotlib.figure.Figure`` built without pyplot (no global state, safe off the main thread).
    """
    from matplotlib.figure import Figure

    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(steps) > _MAX_PLOTTED:
        keep = np.unique(np.linspace(0, len(steps) - 1, _MAX_PLOTTED).round().astype(int))
        steps, values = steps[keep], values[keep]
    fig = Figure(figsize=(6.4, 4.0), dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    finite = np.isfinite(values)
    ax.plot(steps[finite], values[finite], color="0.55", lw=0.8, label="observed")

    last, horizon = float(forecast.last_step), float(forecast.horizon)
    start = float(steps[0]) if len(steps) else last
    fit_steps = np.linspace(start, last, 200)
    ahead = np.linspace(last, max(horizon, last), 200)
    ax.plot(fit_steps, forecast.predict(fit_steps), color="tab:blue", lw=1.5, label="fit")
    ax.plot(ahead, forecast.predict(ahead), color="tab:blue", lw=1.5, ls="--", label=f"forecast to step {int(horizon)}")

    band = forecast_band(forecast, ahead, interval)
    if band is not None and horizon > last:
        lo, hi = forecast.interval(interval)
        final = float(forecast.final)
        ax.fill_between(
            ahead,
            band[1],
            band[2],
            color="tab:blue",
            alpha=0.18,
            lw=0,
            label=f"{interval:.0%} interval at the horizon (narrowed linearly back to the last step)",
        )
        ax.errorbar([horizon], [final], yerr=[[final - lo], [hi - final]], color="tab:blue", capsize=4)

    if target is not None and math.isfinite(target):
        ax.axhline(target, color="tab:red", lw=1.0, ls=":", label=f"target {target:.4g}")
        reach = forecast.step_to_reach(target)
        if reach is not None:
            ax.axvline(reach, color="tab:red", lw=0.8, alpha=0.6, label=f"forecast to reach it at step {reach}")

    ax.set_xlabel("step")
    ax.set_ylabel(title or "metric")
    lo, hi = forecast.interval(interval)
    ax.set_title(
        f"{title or 'metric'} forecast at step {int(horizon)}, made at step {int(last)}: "
        f"{float(forecast.final):.4g} [{lo:.4g}, {hi:.4g}]",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
