"""Finished runs of a log directory (a sweep, earlier runs of the recipe) as forecasting ``Reference`` runs.

A run is what ``curvecast analyze DIR`` calls one (``runs.find_runs``). Its curve of the monitor is, first choice,
what curvecast wrote of it (``curvecast/<monitor>``, on the optimizer-step axis, with ``curvecast/lr`` for the LR of
every step); else the series the module logged as ``monitor`` (the training loss is chosen as ``curvecast analyze``
chooses it) with the LR of a ``LearningRateMonitor`` when there is one. A run curvecast stopped early, or that ended
before ``MIN_FINISHED`` of the longest run's last step (one that crashed or was stopped otherwise), is left out: its
last point would be read as the recipe's end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from curvecast.forecasting.references import MAX_REFERENCES, Reference
from curvecast.logreaders import LogReadError, RunLog, choose_loss, choose_lr, read_log
from curvecast.logreaders.base import Curve, printable
from curvecast.logreaders.run_dirs import find_runs
from curvecast.logreaders.select import lr_at_every_step
from curvecast.series import METRIC_PREFIX, STOPPED_TAG, TRAIN_LOSS

__all__ = ["MIN_FINISHED", "ReferenceLogs", "references_from_logs"]

# Runs read at most, the latest written first: reading a log costs milliseconds to seconds, paid at the start of fit.
MAX_RUNS_READ = 4 * MAX_REFERENCES
# A run that ends before this fraction of the longest run's last step is no finished run of the recipe.
MIN_FINISHED = 0.5


@dataclass(frozen=True)
class ReferenceLogs:
    """The references read under a directory, and every run left out with the reason (``"path: reason"``)."""

    references: list[Reference] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def references_from_logs(
    directory: str | os.PathLike[str], monitor: str, exclude: tuple[Path, ...] = ()
) -> ReferenceLogs:
    """The finished runs under ``directory`` as references for ``monitor`` (curvecast's series name: ``"loss"`` is the
    training loss of every optimizer step).

    Args:
        directory: a directory of runs (TensorBoard or CSVLogger logs).
        monitor: the series to read.
        exclude: run directories to leave out (the live run's own logs).

    Raises:
        ValueError: ``directory`` is something else than a directory (one that does not exist holds no run yet).
    """
    root = Path(directory)
    if not root.exists():
        return ReferenceLogs([], [f"{root} does not exist (yet)"])
    if not root.is_dir():
        raise ValueError(f"Expected `references` to be a directory of finished runs, but {root} is not a directory")
    left_out = {p.resolve() for p in exclude}
    runs = [run for run in find_runs(root) if not any(_within(run.resolve(), p) for p in left_out)]
    runs.sort(key=_written_at, reverse=True)
    read: list[tuple[Path, Reference]] = []
    skipped = [f"{run}: not read (only the latest {MAX_RUNS_READ} runs are)" for run in runs[MAX_RUNS_READ:]]
    for run in runs[:MAX_RUNS_READ]:
        try:
            read.append((run, _reference(read_log(run), monitor)))
        except ValueError as error:  # LogReadError too: a run that cannot be read is one reference fewer
            skipped.append(f"{run}: {error}")
    if not read:
        return ReferenceLogs([], skipped)
    longest = max(float(ref.steps[-1]) for _, ref in read)
    kept = []
    for run, ref in read:
        if ref.steps[-1] < MIN_FINISHED * longest:
            skipped.append(f"{run}: ended at step {ref.steps[-1]:.0f}, before {MIN_FINISHED:.0%} of the longest run")
        elif len(kept) < MAX_REFERENCES:
            kept.append(ref)
        else:
            skipped.append(f"{run}: past the {MAX_REFERENCES} latest runs")
    return ReferenceLogs(kept, skipped)


def _reference(log: RunLog, monitor: str) -> Reference:
    stopped = log.curves.get(STOPPED_TAG)
    if stopped is not None and len(stopped):  # its last point is no end of the recipe's run
        raise LogReadError(f"stopped early by curvecast at step {stopped.steps[0]}")
    curve = _monitor_curve(log, monitor)
    if len(curve) and curve.steps[0] < 0:
        raise LogReadError(f"`{printable(curve.name)}` starts at a negative step ({curve.steps[0]})")
    lr = log.curves.get(METRIC_PREFIX + "lr") or choose_lr(log, curve)
    lrs = lr_at_every_step(lr, int(curve.steps[-1])) if lr is not None and len(curve) else None
    return Reference(curve.steps, curve.values, lrs=lrs)


def _monitor_curve(log: RunLog, monitor: str) -> Curve:
    own = log.curves.get(METRIC_PREFIX + monitor)
    if own is not None:
        return own
    if monitor != TRAIN_LOSS:
        return choose_loss(log, monitor)
    curve = choose_loss(log, None)
    if "loss" not in curve.name.lower():  # a lone column of something else, which `analyze` would still try
        raise LogReadError(f"no training loss is logged, only `{printable(curve.name)}`")
    return curve


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _written_at(run: Path) -> float:
    """The last write of any file directly in the run directory (its logs)."""
    try:
        return max((entry.stat().st_mtime for entry in os.scandir(run) if entry.is_file(follow_symlinks=False)),
                   default=0.0)  # fmt: skip
    except OSError:
        return 0.0
