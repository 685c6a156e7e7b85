"""`curvecast analyze PATH`: the forecast and the anomalies of a run that already exists, from its logs.

``analyze()`` does the work and returns an ``Analysis``; ``run_analyze()`` is the command-line front end (the
``curvecast analyze`` subcommand) that prints it, writes the plot and the JSON report, and turns every input problem
into one line on stderr and exit status 1 (2 for arguments that make no sense, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curvecast.metric_direction import metric_direction
from curvecast.offline.logreaders import Curve, LogReadError, RunLog, choose_loss, choose_lr, read_log
from curvecast.offline.logreaders.base import printable
from curvecast.offline.logreaders.select import lr_at_every_step

if TYPE_CHECKING:
    from curvecast.forecasting import Anomaly, Forecast

__all__ = ["Analysis", "AnalyzeError", "add_analyze_arguments", "analysis_to_dict", "analyze", "run_analyze"]

EXIT_INPUT = 1  # the log cannot be analysed: missing, unreadable, truncated, unknown tag, too few points
EXIT_USAGE = 2  # the arguments contradict each other or the log (argparse uses 2 as well)
MIN_POINTS = 5  # the Forecaster's default `min_points`: fewer finite points cannot be forecast
_MAX_LISTED = 20  # anomalies printed in the text report; the JSON report has them all
# The streaming anomaly detector costs tens of microseconds a point; a longer curve is searched on bucket maxima.
MAX_DETECTOR_POINTS = 50_000
# An error is one line on stderr; one listing every series of a huge log is cut here (the JSON report lists them all).
_MAX_MESSAGE_CHARS = 4000
_MAX_NAME_CHARS = 200  # of a series name or path in the text report, escaped: a log must not drive the terminal


class AnalyzeError(ValueError):
    """Arguments that cannot apply to the log, e.g. a horizon before its last step."""


@dataclass(frozen=True)
class Analysis:
    """The outcome of ``analyze``.

    Attributes:
        log: everything read from the path.
        curve: the series analysed.
        lr: the learning-rate series found, or None.
        lr_used: whether ``lr`` covered every step up to the horizon and was given to the forecaster.
        horizon: the step forecast to.
        target: the target asked about, or None.
        forecast: the ``Forecast`` (``forecast.ok`` False with ``forecast.reason`` when none could be made).
        anomalies: the ``Anomaly`` events found over the whole curve, in step order.
        anomaly_bucket: how many logged points each point given to the anomaly detector stands for (1: all of them).
        mode: ``"min"`` when the series is better low, ``"max"`` when better high (given, or read from its name).
        bounds: the series' range given to the forecaster, or None.
    """

    log: RunLog
    curve: Curve
    lr: Curve | None
    lr_used: bool
    horizon: int
    target: float | None
    forecast: Forecast
    anomalies: list[Anomaly]
    anomaly_bucket: int = 1
    mode: str = "min"
    bounds: tuple[float | None, float | None] | None = None


def bucket_maxima(steps: np.ndarray, values: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Each run of ``bucket`` points as one point: its maximum at its own step, or its first non-finite value.

    The maximum keeps a spike's height and step (a mean would dilute it), and a bucket holding a NaN or inf stays
    non-finite, so the critical events survive the thinning.
    """
    n = len(steps) // bucket * bucket
    tail_steps, tail_values = steps[n:], values[n:]
    block = values[:n].reshape(-1, bucket)
    finite = np.isfinite(block)
    pick = np.where(finite.all(axis=1), np.argmax(np.where(finite, block, -np.inf), axis=1), np.argmin(finite, axis=1))
    rows = np.arange(len(block))
    out_steps = steps[:n].reshape(-1, bucket)[rows, pick]
    return np.r_[out_steps, tail_steps], np.r_[block[rows, pick], tail_values]


def _detect(curve: Curve, lr: Curve | None, mode: str) -> tuple[list[Anomaly], int]:
    from curvecast.forecasting import detect_anomalies

    steps, values = curve.steps, curve.values
    bucket = -(-len(steps) // MAX_DETECTOR_POINTS)
    if bucket > 1:  # the worst point of each bucket: its maximum, or for a score its minimum
        sign = 1.0 if mode == "min" else -1.0
        steps, worst = bucket_maxima(steps, sign * values, bucket)
        values = sign * worst
    lrs = lr_at_every_step(lr, int(steps[-1])) if lr is not None else None
    events = detect_anomalies(steps, values, lrs=None if lrs is None else lrs.tolist(), series=curve.name, mode=mode)
    return sorted(events, key=lambda event: event.step), bucket


def analyze(
    path: str | Path,
    tag: str | None = None,
    horizon: int | None = None,
    target: float | None = None,
    *,
    mode: str | None = None,
    bounds: tuple[float | None, float | None] | None = None,
) -> Analysis:
    """Read the log at ``path``, forecast its loss (or ``tag``) at ``horizon`` and find its anomalies.

    Args:
        path: a TensorBoard log directory or event file, a CSVLogger ``metrics.csv``, or a CSV/JSONL file.
        tag: the series to analyse; by default the training loss.
        horizon: the step to forecast; by default the last logged step.
        target: a value of the series to ask about (step reaching it, probability of ending better than it).
        mode: ``"min"`` or ``"max"``; by default read from the series' name (``metric_direction``: ``val_acc`` is
            better high, a loss low).
        bounds: the series' range ``(lo, hi)``, None for an open side; by default (0, 1) or (0, 100) for a
            fraction-like score (accuracy, F1, AUC, ...) whose values lie there, else none.

    Raises:
        LogReadError: the log cannot be read, ``tag`` is not in it, or it has fewer than ``MIN_POINTS`` points.
        AnalyzeError: ``horizon`` lies before the last logged step, or ``target`` is not finite.
    """
    from curvecast.forecasting import Forecaster
    from curvecast.forecasting.metric_map import check_mode_bounds

    log = read_log(path)
    curve = choose_loss(log, tag)
    _check_steps(curve, log)
    finite = int(np.isfinite(curve.values).sum())
    if finite < MIN_POINTS:
        raise LogReadError(
            f"Expected at least {MIN_POINTS} finite points in `{curve.name}` to forecast, but it has {finite} "
            f"({len(curve)} logged)"
        )
    last = int(curve.steps[-1])
    if horizon is None:
        horizon = last
    elif horizon < last:
        raise AnalyzeError(f"Expected `--horizon` to be at or after the last logged step {last}, but got {horizon}")
    if target is not None and not math.isfinite(target):
        raise AnalyzeError(f"Expected `--target` to be a finite number, but got {target}")
    lr = choose_lr(log, curve)
    lrs = lr_at_every_step(lr, horizon) if lr is not None else None
    try:
        check_mode_bounds(mode or "min", bounds)
    except ValueError as error:
        raise AnalyzeError(str(error)) from None
    mode, bounds = metric_direction(curve.name, curve.values, mode, bounds)
    try:
        forecast = Forecaster().fit(curve.steps, curve.values, horizon=horizon, lrs=lrs, mode=mode, bounds=bounds)
        anomalies, bucket = _detect(curve, lr, mode)
    except ValueError as error:  # both validate their inputs with ValueError; anything left here is about the log
        raise LogReadError(f"Cannot analyse `{printable(curve.name)}` of {log.source}: {error}") from None
    return Analysis(log, curve, lr, lrs is not None, horizon, target, forecast, anomalies, bucket, mode, bounds)


def _check_steps(curve: Curve, log: RunLog) -> None:
    """The forecaster counts steps from 0; a log starting below (a warm-up logged at negative steps) cannot be fit."""
    if len(curve) and curve.steps[0] < 0:
        raise LogReadError(
            f"Expected the steps of `{printable(curve.name)}` in {log.source} to be at least 0, but the first is "
            f"{curve.steps[0]}: the forecaster counts steps from 0"
        )


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
                prob_better=_number(forecast.prob_beyond(target)),  # below for a loss, above for a score
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def describe_analysis(analysis: Analysis, plot: str | None = None) -> str:
    """The text report printed by ``curvecast analyze``."""
    curve, forecast, target = analysis.curve, analysis.forecast, analysis.target
    source, name = printable(str(analysis.log.source), _MAX_NAME_CHARS), printable(curve.name, _MAX_NAME_CHARS)
    lines = [
        f"{source} ({analysis.log.kind}, {len(analysis.log.curves)} series)",
        f"  series: {name}, {len(curve):,} points, steps {curve.steps[0]}..{curve.steps[-1]}, "
        f"last value {_fmt(curve.values[-1])}" + ("" if analysis.mode == "min" else " (higher is better)"),
    ]
    if analysis.lr is None:
        lines.append("  learning rate: not logged")
    else:
        use = "used" if analysis.lr_used else f"not used: it ends at step {analysis.lr.steps[-1]}, before the horizon"
        lines.append(f"  learning rate: {printable(analysis.lr.name, _MAX_NAME_CHARS)} ({use})")
    if not forecast.ok:
        lines.append(f"  forecast at step {analysis.horizon}: none ({forecast.reason})")
    else:
        lo, hi = forecast.interval(0.8)
        lines.append(
            f"  forecast at step {analysis.horizon}: {_fmt(forecast.final)} (80% interval {_fmt(lo)} .. {_fmt(hi)})"
        )
        if target is not None:
            reach = forecast.step_to_reach(target)
            when = f"reached near step {reach}" if reach is not None else "not reached by the horizon"
            chance = f"P(final {'<' if analysis.mode == 'min' else '>'} target) = {forecast.prob_beyond(target):.2f}"
            lines.append(f"  target {_fmt(target)}: {when}; {chance}")
    events = analysis.anomalies
    thinned = f" (searched on maxima of {analysis.anomaly_bucket} points)" if analysis.anomaly_bucket > 1 else ""
    lines.append(f"  anomalies{thinned}: {len(events) or 'none'}")
    # The first sentence says what happened; the advice that follows is in the JSON report.
    lines.extend(f"    [{e.severity}] {e.kind}: {e.message.split('. ')[0]}" for e in events[:_MAX_LISTED])
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
        from curvecast.offline.plot import plot_analysis

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
    from curvecast.offline.runs import find_runs

    try:
        return find_runs(path) or None
    except LogReadError:
        return None


def _analyze_runs(args: argparse.Namespace, runs: list[Path]) -> int:
    """``curvecast analyze DIR`` over a directory of runs: a table ranking them by forecast (no plots)."""
    from curvecast.offline.runs import describe_runs, rank_runs, runs_to_dict

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
