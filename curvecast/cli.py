"""The `curvecast` command: `curvecast demo` trains a small model with the plugin; `curvecast analyze` reads logs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from curvecast.demo import DemoConfig, run_demo
    from curvecast.report_text import describe_report

    config = DemoConfig(max_steps=args.steps, logdir=args.logdir, seed=args.seed)
    print(f"Training a tiny character-level transformer on CPU for {config.max_steps} steps, with Curvecast ...")
    result = run_demo(config)
    bundle = result.bundle
    print(f"\nDone in {result.seconds:.0f} s. Forecast reports made during the run: {len(bundle.reports)}")
    if bundle.last_report is not None:
        print("\nLast forecast:\n" + describe_report(bundle.last_report))
    first = next((r for r in bundle.reports if r.forecast is not None and r.forecast.ok), None)
    if first is not None and first is not bundle.last_report:
        print("\nFirst forecast, made early in the run:\n" + describe_report(first))
    print(f"\nTensorBoard logs: {result.log_dir}\nOpen them with:  tensorboard --logdir {args.logdir}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from curvecast.analyze import run_analyze

    return run_analyze(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curvecast",
        description="Forecast where a training run is going: final loss with an interval, time to a target, anomalies.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="train a tiny transformer on CPU with Curvecast, write TensorBoard logs, print the forecast",
        description="Train a tiny character-level transformer on generated text (CPU, about a minute) with the "
        "Curvecast callback and a TensorBoardLogger, then print the forecast report and how to open the logs.",
    )
    demo.add_argument("--steps", type=int, default=300, help="optimizer steps to train (default: 300)")
    demo.add_argument("--logdir", default="curvecast_logs", help="TensorBoard log directory (default: curvecast_logs)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(run=_demo)

    analyze = commands.add_parser(
        "analyze",
        help="forecast and find anomalies in the logs of a run that already exists",
        description="Read a TensorBoard log directory or event file, a Lightning CSVLogger metrics.csv, or a CSV/JSONL "
        "of step and value columns; print the forecast and the anomalies, and write a plot.",
    )
    try:
        from curvecast.analyze import add_analyze_arguments
    except ImportError:  # pragma: no cover - the analyze module ships with the package
        analyze.add_argument("path")
    else:
        add_analyze_arguments(analyze)
    analyze.set_defaults(run=_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
