"""`curvecast analyze PATH`: the forecast and the anomalies of a run that already exists, from its logs.

``run_analyze()`` is the command-line front end (the ``curvecast analyze`` subcommand): it runs ``analyze()`` (from
:mod:`curvecast.offline.analysis`, re-exported here) on one run or :mod:`curvecast.offline.runs` on a directory of
runs, prints the outcome, writes the plot and the JSON report, and turns every input problem into one line on stderr
and exit status 1 (2 for arguments that make no sense, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from curvecast.logreaders import LogReadError
from curvecast.logreaders.base import printable
from curvecast.logreaders.run_dirs import find_runs
from curvecast.offline.analysis import Analysis, AnalyzeError, analyze, run_name
from curvecast.offline.describe import analysis_to_dict, describe_analysis
from curvecast.offline.plot import plot_analysis
from curvecast.offline.runs import describe_runs, rank_runs, runs_to_dict

__all__ = ["Analysis", "AnalyzeError", "add_analyze_arguments", "analysis_to_dict", "analyze", "run_analyze"]

# The log cannot be analysed: missing, unreadable, truncated, unknown tag, too few points. A series holding NaN or
# inf is analysed (exit status 0): each non-finite value is an anomaly, and too few finite ones leave no forecast.
EXIT_INPUT = 1
EXIT_USAGE = 2  # the arguments contradict each other or the log (argparse uses 2 as well)
# An error is one line on stderr; one listing every series of a huge log is cut here (the JSON report lists them all).
_MAX_MESSAGE_CHARS = 4000


def default_plot_path(source: str | Path) -> Path:
    """``<run>.curvecast.png`` beside the log: in the run directory given, or beside the file given."""
    path = Path(source)
    directory = path if path.is_dir() else path.parent
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_name(source)).strip("._") or "run"
    return directory / f"{name}.curvecast.png"


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``curvecast analyze`` to ``parser``."""
    parser.add_argument(
        "path",
        help="TensorBoard log directory or event file, metrics.csv, or a CSV/JSONL log; a directory of several runs "
        "(a sweep) gives a table ranking them by forecast",
    )
    parser.add_argument(
        "--tag", help="the series to analyse (default: the densest loss series, curvecast's own record first)"
    )
    parser.add_argument(
        "--horizon", type=int,
        help="the step to forecast (default: the run's planned end from its records: curvecast's forecasts, "
        "max_steps or max_epochs in hparams.yaml; else the log's last step, where nothing is forecast)",
    )  # fmt: skip
    parser.add_argument("--target", type=float, help="a value to reach: when, and how likely by the horizon")
    parser.add_argument(
        "--mode", choices=("min", "max"),
        help="whether the series is better low or high (default: from its name, else from its values)",
    )  # fmt: skip
    parser.add_argument(
        "--bounds", nargs=2, metavar=("LO", "HI"), type=_bound,
        help="the series' range, 'none' for an open side (default: 0 1, or 0 100 in percent, for an accuracy-like "
        "score whose values lie there; else open)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report instead of text")
    plot = parser.add_mutually_exclusive_group()
    plot.add_argument(
        "--plot", metavar="PATH", help="where to write the PNG plot (default: <run>.curvecast.png beside the log)"
    )
    plot.add_argument("--no-plot", action="store_true", help="do not write a plot")


def run_analyze(args: argparse.Namespace) -> int:
    """Run ``curvecast analyze`` with parsed ``args``; returns the exit status (0, or 1/2 with a message on stderr)."""
    many = _runs_under(Path(args.path))
    if many is not None:
        if len(many) > 1:
            return _analyze_runs(args, many)
        args.path = str(many[0])  # a directory holding one run: that run, named by its own directory
    try:
        analysis = analyze(args.path, tag=args.tag, horizon=args.horizon, target=args.target, **_direction(args))
    except LogReadError as error:
        return _fail(str(error), EXIT_INPUT)
    except AnalyzeError as error:
        return _fail(str(error), EXIT_USAGE)
    plot: str | None = None
    if not getattr(args, "no_plot", False):
        target_path = Path(args.plot) if getattr(args, "plot", None) else default_plot_path(args.path)
        if not getattr(args, "plot", None) and not os.access(target_path.parent, os.W_OK):
            target_path = Path(target_path.name)  # a log on a read-only mount: the plot goes to the current directory
        if _is_fifo(target_path):
            return _fail(f"Cannot write the plot to {target_path}: it is a FIFO, whose open would wait", EXIT_INPUT)
        try:
            plot_analysis(analysis, target_path)
        except OSError as error:
            return _fail(f"Cannot write the plot to {target_path}: {error.strerror or error}", EXIT_INPUT)
        plot = str(target_path)
    if args.json:
        print(json.dumps(analysis_to_dict(analysis, plot), indent=2, allow_nan=False))
    else:
        print(describe_analysis(analysis, plot))
    return 0


def _runs_under(path: Path) -> list[Path] | None:
    """The runs under a directory (None for a file, or when the directory cannot be searched: read_log says why)."""
    if not path.is_dir() or path.is_symlink():
        return None
    try:
        return find_runs(path) or None
    except LogReadError:
        return None


def _analyze_runs(args: argparse.Namespace, runs: list[Path]) -> int:
    """``curvecast analyze DIR`` over a directory of runs: a table ranking them by forecast, with where each stands
    with ``--target`` (no plots: ``--plot`` is an error here, not a silent no-op)."""
    if args.horizon is not None and args.horizon < 0:
        return _fail(f"Expected `--horizon` to be a non-negative step, but got {args.horizon}", EXIT_USAGE)
    directory = Path(args.path)
    if getattr(args, "plot", None):
        return _fail(f"`--plot` draws one run, and {directory} holds {len(runs)}: pass one run's directory to plot "
                     "it (the table ranking them has no plot)", EXIT_USAGE)  # fmt: skip
    ranked = rank_runs(runs, tag=args.tag, horizon=args.horizon, target=args.target, **_direction(args))
    if all(run.analysis is None for run in ranked):
        return _fail(f"None of the {len(runs)} runs under {directory} could be analysed: {ranked[0].error}", EXIT_INPUT)
    if args.json:
        print(json.dumps(runs_to_dict(directory, ranked), indent=2, allow_nan=False))
    else:
        print(describe_runs(directory, ranked))
    return 0


def _bound(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', but got {text!r}") from None


def _direction(args: argparse.Namespace) -> dict[str, Any]:
    bounds = getattr(args, "bounds", None)
    return {"mode": getattr(args, "mode", None), "bounds": tuple(bounds) if bounds is not None else None}


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _fail(message: str, status: int) -> int:
    """Print ``message`` as one line on stderr: names and paths come from files and may hold newlines or escapes."""
    print(f"curvecast analyze: error: {printable(message, _MAX_MESSAGE_CHARS)}", file=sys.stderr)
    return status
