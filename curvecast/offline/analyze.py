"""`curvecast analyze PATH`: the forecast and the anomalies of a run that already exists, from its logs.

``run_analyze()`` is the command-line front end (the ``curvecast analyze`` subcommand): it runs ``analyze()`` (from
:mod:`curvecast.offline.analysis`, re-exported here) on one run or :mod:`curvecast.offline.runs` on a directory of
runs, prints the outcome, writes the plot and the JSON report, and turns every input problem into one line on stderr
and exit status 1 (2 for arguments that make no sense, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curvecast.logreaders import LogReadError
from curvecast.logreaders.base import printable
from curvecast.logreaders.run_dirs import find_runs
from curvecast.offline.analysis import Analysis, AnalyzeError, analyze
from curvecast.offline.plot import plot_analysis
from curvecast.offline.runs import describe_runs, rank_runs, runs_to_dict
from curvecast.render.text import anomaly_line, fmt, forecast_lines

if TYPE_CHECKING:
    from curvecast.forecasting import Anomaly

__all__ = ["Analysis", "AnalyzeError", "add_analyze_arguments", "analysis_to_dict", "analyze", "run_analyze"]

EXIT_INPUT = 1  # the log cannot be analysed: missing, unreadable, truncated, unknown tag, too few points
EXIT_USAGE = 2  # the arguments contradict each other or the log (argparse uses 2 as well)
_MAX_LISTED = 20  # anomalies printed in the text report; the JSON report has them all
# An error is one line on stderr; one listing every series of a huge log is cut here (the JSON report lists them all).
_MAX_MESSAGE_CHARS = 4000
_MAX_NAME_CHARS = 200  # of a series name or path in the text report, escaped: a log must not drive the terminal


def _number(value: float | None) -> float | None:
    """JSON has no NaN or inf: they become null."""
    return float(value) if value is not None and math.isfinite(value) else None


def analysis_to_dict(analysis: Analysis, plot: str | None = None) -> dict[str, Any]:
    """The machine-readable report (what ``--json`` prints)."""
    curve, forecast, target = analysis.curve, analysis.forecast, analysis.target
    finite = curve.values[np.isfinite(curve.values)]
    report: dict[str, Any] = {
        "source": str(analysis.log.source),
        "format": analysis.log.kind,
        "series": {
            "name": curve.name,
            "points": len(curve),
            "first_step": int(curve.steps[0]),
            "last_step": int(curve.steps[-1]),
            "last_value": _number(curve.values[-1]),
            "min_value": _number(finite.min()) if finite.size else None,
        },
        "lr": {"name": analysis.lr.name if analysis.lr else None, "used": analysis.lr_used},
        "horizon": analysis.horizon,
        "target": target,
        "mode": analysis.mode,
        "bounds": None if analysis.bounds is None else [_number(b) for b in analysis.bounds],
        "forecast": {"ok": bool(forecast.ok), "reason": forecast.reason, "model": forecast.model},
        "anomalies": [_anomaly_dict(event) for event in analysis.anomalies],
        "anomaly_bucket": analysis.anomaly_bucket,
        "series_available": analysis.log.names,
        "plot": plot,
    }
    if forecast.ok:
        lo80, hi80 = forecast.interval(0.8)
        lo95, hi95 = forecast.interval(0.95)
        report["forecast"].update(
            final=_number(forecast.final),
            interval_80=[_number(lo80), _number(hi80)],
            interval_95=[_number(lo95), _number(hi95)],
        )
        if target is not None:
            report["forecast"].update(
                step_to_reach=forecast.step_to_reach(target),
                prob_below=_number(forecast.prob_below(target)),
                prob_better=_number(analysis.target_chance),  # below for a loss, above for a score
            )
    return report


def _anomaly_dict(event: Anomaly) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "step": int(event.step),
        "severity": event.severity,
        "message": event.message,
        "score": _number(event.score),
        "value": _number(event.value),
    }


def describe_analysis(analysis: Analysis, plot: str | None = None) -> str:
    """The text report printed by ``curvecast analyze``."""
    curve, forecast, target = analysis.curve, analysis.forecast, analysis.target
    source, name = printable(str(analysis.log.source), _MAX_NAME_CHARS), printable(curve.name, _MAX_NAME_CHARS)
    lines = [
        f"{source} ({analysis.log.kind}, {len(analysis.log.curves)} series)",
        f"  series: {name}, {len(curve):,} points, steps {curve.steps[0]}..{curve.steps[-1]}, "
        f"last value {fmt(curve.values[-1])}" + ("" if analysis.mode == "min" else " (higher is better)"),
    ]
    if analysis.lr is None:
        lines.append("  learning rate: not logged")
    else:
        use = "used" if analysis.lr_used else f"not used: it ends at step {analysis.lr.steps[-1]}, before the horizon"
        lines.append(f"  learning rate: {printable(analysis.lr.name, _MAX_NAME_CHARS)} ({use})")
    lines.extend(forecast_lines(forecast, target, analysis.target_chance))
    events = analysis.anomalies
    thinned = f" (searched on maxima of {analysis.anomaly_bucket} points)" if analysis.anomaly_bucket > 1 else ""
    lines.append(f"  anomalies{thinned}: {len(events) or 'none'}")
    # The first sentence says what happened; the advice that follows is in the JSON report.
    lines.extend(anomaly_line(e, indent="    ", brief=True) for e in events[:_MAX_LISTED])
    if len(events) > _MAX_LISTED:
        lines.append(f"    ... and {len(events) - _MAX_LISTED} more (all are in the --json report)")
    if plot:
        lines.append(f"  plot: {plot}")
    return "\n".join(lines)


def default_plot_path(source: str | Path) -> Path:
    """``<name>.curvecast.png`` in the current directory, named after the log (its directory, or the file's stem)."""
    path = Path(source).resolve()
    if path.is_dir():
        name = path.name
    elif "tfevents" in path.name:  # events.out.tfevents.<time>.<host>: the run directory names it better
        name = path.parent.name
    else:
        name = path.stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "run"
    return Path(f"{name}.curvecast.png")


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``curvecast analyze`` to ``parser``."""
    parser.add_argument(
        "path",
        help="TensorBoard log directory or event file, metrics.csv, or a CSV/JSONL log; a directory of several runs "
        "(a sweep) gives a table ranking them by forecast",
    )
    parser.add_argument("--tag", help="the series to analyse (default: the training loss)")
    parser.add_argument("--horizon", type=int, help="the step to forecast (default: the last logged step)")
    parser.add_argument("--target", type=float, help="a value to reach: when, and how likely by the horizon")
    parser.add_argument(
        "--mode", choices=("min", "max"), help="whether the series is better low or high (default: from its name)"
    )
    parser.add_argument(
        "--bounds", nargs=2, metavar=("LO", "HI"), type=_bound,
        help="the series' range, 'none' for an open side (default: 0 1 for an accuracy-like score)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report instead of text")
    plot = parser.add_mutually_exclusive_group()
    plot.add_argument("--plot", metavar="PATH", help="where to write the PNG plot (default: ./<run>.curvecast.png)")
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
    """``curvecast analyze DIR`` over a directory of runs: a table ranking them by forecast (no plots)."""
    if args.horizon is not None and args.horizon < 0:
        return _fail(f"Expected `--horizon` to be a non-negative step, but got {args.horizon}", EXIT_USAGE)
    directory = Path(args.path)
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
