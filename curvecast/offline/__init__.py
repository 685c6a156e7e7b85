"""Offline tools: read the logs of runs that already exist, forecast them, find their anomalies and plot them.

This is what ``curvecast analyze`` runs. Nothing here imports torch or Lightning, so it works on logs copied off a
training machine, where neither is installed.

- ``analysis`` (``analyze()``, ``Analysis``): the forecast and the anomalies of one logged curve;
- ``analyze`` (``run_analyze()``): the command-line front end, over one run or (with ``runs``) a directory of runs;
- ``read_log()``, ``choose_loss()``, ``choose_lr()``: re-exported from :mod:`curvecast.logreaders` (TensorBoard event
  files, Lightning CSVs, CSV and JSONL logs), the layer the live code reads logs with too;
- ``plot`` (``plot_analysis()``): the PNG of an analysis;
- ``runs``: a directory of runs ranked by forecast.

Text and figures come from :mod:`curvecast.render`, as in a live run.

The ``analyze()`` function is not re-exported here: its name would hide the ``curvecast.offline.analyze`` module.

>>> from curvecast.offline.analyze import analyze
>>> analysis = analyze("lightning_logs/version_0", target=0.5)    # doctest: +SKIP
>>> analysis.forecast.final                                        # doctest: +SKIP
0.41
"""

from curvecast.logreaders import Curve, LogReadError, RunLog, choose_loss, choose_lr, read_log
from curvecast.offline.analysis import Analysis, AnalyzeError
from curvecast.offline.analyze import add_analyze_arguments, analysis_to_dict, run_analyze
from curvecast.offline.plot import plot_analysis

__all__ = [
    "Analysis",
    "AnalyzeError",
    "Curve",
    "LogReadError",
    "RunLog",
    "add_analyze_arguments",
    "analysis_to_dict",
    "choose_loss",
    "choose_lr",
    "plot_analysis",
    "read_log",
    "run_analyze",
]
