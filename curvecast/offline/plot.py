"""The PNG of ``curvecast analyze``: the figure every forecast is drawn with (:mod:`curvecast.render.figure`)."""

from __future__ import annotations

from pathlib import Path

from curvecast.offline.analysis import Analysis, run_name
from curvecast.render.figure import as_plain_text, envelope, forecast_figure

__all__ = ["as_plain_text", "envelope", "plot_analysis", "plot_title"]


def plot_title(analysis: Analysis) -> str:
    """The figure's title in words: the series, the run, and the step forecast (or the end of the log)."""
    where = f"{analysis.curve.name} of {run_name(analysis.log.source)}"
    if analysis.beyond_log:
        return f"{where}: forecast at step {analysis.horizon}"
    return f"{where}: fit to the end of the log at step {analysis.last_step} (no forecast beyond it)"


def plot_analysis(analysis: Analysis, path: Path) -> Path:
    """Write the figure of ``analysis`` to ``path`` as a PNG and return ``path``.

    Raises:
        OSError: if ``path`` cannot be written.
    """
    curve = analysis.curve
    fig = forecast_figure(
        curve.steps, curve.values, analysis.forecast, target=analysis.target, title=plot_title(analysis),
        label=curve.name, anomalies=analysis.anomalies, size=(9, 5), dpi=110,
    )  # fmt: skip
    fig.savefig(path, format="png")
    return path
