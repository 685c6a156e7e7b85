"""The PNG of ``curvecast analyze``: the figure every forecast is drawn with (:mod:`curvecast.render.figure`)."""

from __future__ import annotations

from pathlib import Path

from curvecast.offline.analysis import Analysis
from curvecast.render.figure import as_plain_text, envelope, forecast_figure

__all__ = ["as_plain_text", "envelope", "plot_analysis"]


def plot_analysis(analysis: Analysis, path: Path) -> Path:
    """Write the figure of ``analysis`` to ``path`` as a PNG and return ``path``.

    Raises:
        OSError: if ``path`` cannot be written.
    """
    curve = analysis.curve
    fig = forecast_figure(
        curve.steps, curve.values, analysis.forecast, target=analysis.target, title=str(analysis.log.source),
        label=curve.name, anomalies=analysis.anomalies, size=(9, 5), dpi=110,
    )  # fmt: skip
    fig.savefig(path, format="png")
    return path
