"""The PNG plot of ``curvecast analyze``: the curve, the forecast and its interval, the target and the anomalies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from curvecast.offline.analyze import Analysis

__all__ = ["as_plain_text", "envelope", "plot_analysis"]

_MAX_DRAWN = 4000  # buckets drawn for a long curve: matplotlib takes seconds on a million points
_MAX_LABEL_CHARS = 100  # of a series name or path in the plot: a longer one would push the axes out of the figure
_SEVERITY_COLOURS = {"info": "tab:blue", "warning": "tab:orange", "critical": "tab:red"}


def envelope(steps: np.ndarray, values: np.ndarray, buckets: int = _MAX_DRAWN) -> tuple[np.ndarray, np.ndarray]:
    """Thin a long curve for drawing, keeping each bucket's minimum and maximum so that spikes stay visible."""
    finite = np.isfinite(values)
    steps, values = steps[finite], values[finite]
    if len(steps) <= 2 * buckets:
        return steps, values
    edges = np.linspace(0, len(steps), buckets + 1).astype(np.int64)[:-1]
    low_index = np.minimum.reduceat(values, edges)
    high_index = np.maximum.reduceat(values, edges)
    middle = steps[np.minimum(edges + np.diff(np.r_[edges, len(steps)]) // 2, len(steps) - 1)]
    # Draw min then max at each bucket's middle step: the line sweeps the bucket's whole range.
    return np.repeat(middle, 2), np.column_stack([low_index, high_index]).reshape(-1)


def as_plain_text(text: str) -> str:
    """``text`` (a series name, a path) as matplotlib draws it verbatim.

    Matplotlib reads ``$...$`` as mathtext and raises on what does not parse (a tag like ``$x^$``), so each ``$`` is
    escaped; a legend drops labels starting with ``_``, so such a name gets a leading space; a long one loses its
    middle (the end of a path, or of a tag, tells most).
    """
    if len(text) > _MAX_LABEL_CHARS:
        half = (_MAX_LABEL_CHARS - 3) // 2
        text = text[:half] + "..." + text[-half:]
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def plot_analysis(analysis: Analysis, path: Path) -> Path:
    """Write the plot of ``analysis`` to ``path`` as a PNG and return ``path``.

    Raises:
        OSError: if ``path`` cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display is needed, and a GUI backend would fail on a server
    import matplotlib.pyplot as plt

    curve, forecast = analysis.curve, analysis.forecast
    horizon = float(analysis.horizon)  # an int past 2**63 (from --horizon) overflows matplotlib's C conversions
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    try:
        drawn_steps, drawn_values = envelope(curve.steps, curve.values)
        ax.plot(drawn_steps, drawn_values, lw=0.8, color="tab:gray", alpha=0.8, label=as_plain_text(curve.name))
        if forecast.ok:
            # The fit skips the early transient, so it is drawn from a tenth of the way in.
            start = curve.steps[0] + 0.1 * (curve.steps[-1] - curve.steps[0])
            grid = np.linspace(start, horizon, 400)
            ax.plot(grid, forecast.predict(grid), color="tab:blue", lw=1.6, label="fit and forecast")
            lo, hi = forecast.interval(0.8)
            lo95, hi95 = forecast.interval(0.95)
            ax.errorbar(
                [horizon],
                [forecast.final],
                yerr=[[forecast.final - lo95], [hi95 - forecast.final]],
                fmt="none",
                ecolor="tab:blue",
                elinewidth=1,
                capsize=4,
                alpha=0.6,
            )
            ax.errorbar(
                [horizon],
                [forecast.final],
                yerr=[[forecast.final - lo], [hi - forecast.final]],
                fmt="o",
                color="tab:blue",
                elinewidth=4,
                capsize=0,
                label=f"step {analysis.horizon}: {forecast.final:.4g} (80% {lo:.4g}..{hi:.4g}, 95% whiskers)",
            )
            if horizon > curve.steps[-1]:
                ax.axvspan(curve.steps[-1], horizon, color="tab:blue", alpha=0.06, label="forecast region")
        if analysis.target is not None:
            ax.axhline(analysis.target, color="tab:green", ls="--", lw=1, label=f"target {analysis.target:.4g}")
        _set_limits(ax, curve.values, forecast, analysis.target)
        _draw_anomalies(ax, analysis)
        ax.set_xlabel("step")
        ax.set_ylabel(as_plain_text(curve.name))
        title = as_plain_text(str(analysis.log.source))
        title += "\n" + as_plain_text(f"model: {forecast.model}" if forecast.ok else f"no forecast: {forecast.reason}")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _draw_anomalies(ax, analysis: Analysis) -> None:
    seen: set[str] = set()
    top = ax.get_ylim()[1]
    few = len(analysis.anomalies) <= 10  # vertical lines help find a few events, but bury many
    for event in analysis.anomalies:
        colour = _SEVERITY_COLOURS.get(event.severity, "tab:purple")
        label = f"{event.severity} anomaly" if event.severity not in seen else None
        seen.add(event.severity)
        if few or event.severity == "critical":
            ax.axvline(event.step, color=colour, lw=0.8, alpha=0.5)
        y = event.value if event.value is not None and math.isfinite(event.value) else top
        ax.scatter([event.step], [y], color=colour, marker="x", s=30, zorder=5, label=label)


def _set_limits(ax, values: np.ndarray, forecast, target: float | None) -> None:
    """Zoom on the bulk of the curve: a divergence or one huge spike would otherwise flatten everything else."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    if len(finite) > 20:
        finite = finite[len(finite) // 20 :]  # the first steps of a loss curve sit far above the rest
    low, high = np.percentile(finite, [0.5, 99.5])
    extra = [target] if target is not None else []
    if forecast.ok:
        extra.extend(forecast.interval(0.95))
    extra = [x for x in extra if math.isfinite(x)]
    low, high = min([low, *extra]), max([high, *extra])
    pad = 0.05 * (high - low or abs(high) or 1.0)
    ax.set_ylim(low - pad, high + pad)
