"""The `curvecast` command: `curvecast demo` trains a small model with the plugin; `curvecast analyze` reads logs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE, as `cat` would be


def _positive_int(text: str) -> int:
    """An argparse type: a positive integer (``--steps``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"Expected a positive integer, but got {text!r}")
    return value


def _writable_dir(path: str) -> str | None:
    """Why ``path`` cannot serve as the log directory (created if missing), or None when a file can be written there."""
    import tempfile
    from pathlib import Path

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def _demo(args: argparse.Namespace) -> int:
    import warnings

    from curvecast.logreaders.base import printable

    problem = _writable_dir(args.logdir)
    if problem is not None:
        message = f"Cannot write the log directory {printable(args.logdir, 200)}: {problem}"
        print(f"curvecast demo: error: {message}", file=sys.stderr)
        return 2

    from curvecast.demo import DemoConfig, run_demo
    from curvecast.failsafe import CurvecastWarning
    from curvecast.render.text import describe_report

    # Lightning's tips and this demo's small-data warnings are noise here; curvecast's own warnings go through
    # logging, in the same one-line format as its alerts.
    warnings.filterwarnings("ignore", module="(lightning|pytorch_lightning).*")
    warnings.filterwarnings("once", category=CurvecastWarning)
    logging.captureWarnings(True)
    logging.getLogger("curvecast").setLevel(logging.INFO)
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        lightning_log = logging.getLogger(name)
        if lightning_log.handlers:  # Lightning prints its own lines: once, not again through the root logger
            lightning_log.propagate = False
    config = DemoConfig(max_steps=args.steps, logdir=args.logdir, seed=args.seed)
    print(
        f"Training a tiny character-level transformer on CPU twice, {config.max_steps} steps each, aiming for a "
        f"training loss of {config.target}: once with a model that can get there, once with one too small to.\n"
        "curvecast forecasts the final loss as they train, logs alerts and stops the run that cannot make it.\n"
    )
    result = run_demo(config)
    for run in result.runs:
        bundle = run.bundle
        stop = bundle.stop
        print(f"\n== {run.name}: {run.steps_done} of {config.max_steps} steps ==")
        if bundle.last_report is not None:
            print(describe_report(bundle.last_report))
        first = next((r for r in bundle.reports if r.forecast is not None and r.forecast.ok), None)
        if first is not None and first is not bundle.last_report:
            lo, hi = first.forecast.interval(0.8)
            final = first.forecast.final
            print(f"  (first forecast, at step {first.step}: {final:.4g}, 80% interval {lo:.4g} .. {hi:.4g})")
        print(f"  early stop: {stop.message}" if stop is not None else "  early stop: none, the run reached its end")
    print(f"\nDone in {result.seconds:.0f} s. TensorBoard logs: {result.logdir}")
    print(f"Open them with:  tensorboard --logdir {result.logdir}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from curvecast.offline.analyze import run_analyze

    return run_analyze(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curvecast",
        description="Forecast where a training run is going: final loss with an interval, time to a target, anomalies.",
        epilog="Run `curvecast COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="train a tiny transformer on CPU with Curvecast, write TensorBoard logs, print the forecast",
        description="Train a tiny character-level transformer on generated text (CPU, about a minute) twice with the "
        "Curvecast callback and a TensorBoardLogger: a model that reaches the target and one that cannot, which "
        "curvecast stops early. Print the forecast reports and how to open the logs.",
    )
    demo.add_argument("--steps", type=_positive_int, default=300, help="optimizer steps per run (default: 300)")
    demo.add_argument("--logdir", default="curvecast_logs", help="TensorBoard log directory (default: curvecast_logs)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(run=_demo)

    analyze = commands.add_parser(
        "analyze",
        help="forecast and find anomalies in the logs of a run that already exists, or rank a directory of runs",
        description="Read a TensorBoard log directory or event file, a Lightning CSVLogger metrics.csv, or a CSV/JSONL "
        "of step and value columns; print the forecast and the anomalies, and write a plot. A directory holding "
        "several runs (a sweep) gives one table instead, ranking the runs by forecast.",
    )
    try:
        from curvecast.offline.analyze import add_analyze_arguments
    except ImportError:  # pragma: no cover - the analyze module ships with the package
        analyze.add_argument("path")
    else:
        add_analyze_arguments(analyze)
    analyze.set_defaults(run=_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader of the output has gone (`curvecast analyze run | head`): there is no one left to tell.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point the standard output at the null device: Python flushes it at exit and would fail on the pipe again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture): nothing is flushed to a pipe
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)


if __name__ == "__main__":
    sys.exit(main())
