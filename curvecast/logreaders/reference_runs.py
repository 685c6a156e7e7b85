"""Finished runs of a log directory (a sweep, earlier runs of the recipe) as forecasting ``Reference`` runs.

A run is what ``curvecast analyze DIR`` calls one (``runs.find_runs``). Its curve of the monitor is, first choice,
what curvecast wrote of it (``curvecast/<monitor>``, on the optimizer-step axis, with ``curvecast/lr`` for the LR of
every step); else the series the module logged as ``monitor`` (the training loss is chosen as ``curvecast analyze``
chooses it) with the LR of a ``LearningRateMonitor`` when there is one. A run curvecast stopped early, or that ended
before ``MIN_FINISHED`` of the longest run's last step (one that crashed or was stopped otherwise), is left out: its
last point would be read as the recipe's end.

A reference is bounded whatever its run's length: the curve is reduced to ``MAX_REFERENCE_POINTS`` points as soon as
its log is read (``Reference.bounded``), and the LR, each logged value holding until the next, is kept as knots (two
per logged value, at most ``MAX_LR_SEGMENTS`` values), never as one LR per step. A run of 50 million steps logged every
10,000 keeps what one of 5,000 steps logged every step does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curvecast.forecasting.references import MAX_REFERENCE_POINTS, MAX_REFERENCES, Reference, grid_bins
from curvecast.forecasting.schedule import LRSchedule
from curvecast.logreaders import LogReadError, RunLog, choose_loss, choose_lr, read_log
from curvecast.logreaders.base import Curve, printable
from curvecast.logreaders.run_dirs import find_runs
from curvecast.series import METRIC_PREFIX, STOPPED_TAG, TRAIN_LOSS

__all__ = ["MAX_LR_SEGMENTS", "MIN_FINISHED", "ReferenceLogs", "lr_knots", "references_from_logs"]

# Runs read at most, the latest written first: reading a log costs milliseconds to seconds, paid at the start of fit.
MAX_RUNS_READ = 4 * MAX_REFERENCES
# A run that ends before this fraction of the longest run's last step is no finished run of the recipe.
MIN_FINISHED = 0.5
# Logged LR values kept as they are (two knots each); more are merged into means over the bins of `grid_bins`, which
# keeps the LR area exact at every bin's edge: the area fraction is all a reference's LR is used for.
MAX_LR_SEGMENTS = MAX_REFERENCE_POINTS


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
        try:  # one log's points at a time: each is reduced to a bounded reference before the next is read
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
    lrs = lr_knots(lr, int(curve.steps[-1])) if lr is not None and len(curve) else None
    return Reference.bounded(curve.steps, curve.values, lrs=lrs)


def lr_knots(lr: Curve, horizon: int, max_segments: int = MAX_LR_SEGMENTS) -> LRSchedule | None:
    """The LR of steps 0..horizon as knots, each step taking the last logged value (the first before it), or None
    when the log stops short of ``horizon`` or holds an LR that is not finite and non-negative.

    The LR of every step of ``select.lr_at_every_step``, up to rounding, in at most ``2 * max_segments`` knots: more
    logged values than ``max_segments`` are merged into their mean over each bin of ``grid_bins``.

    Example:
        >>> from curvecast.logreaders import make_curve
        >>> schedule = lr_knots(make_curve("lr", [0, 10, 20], [1.0, 0.5, 0.1]), 29)
        >>> schedule.knots()[0].tolist(), schedule.lr(15), float(schedule.area(np.array([29.0]))[0])
        ([0, 9, 10, 19, 20, 29], 0.5, 16.0)
    """
    steps, values = lr.steps, lr.values
    if len(steps) == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        return None
    # Past its last logged step the schedule of a finished log is unknown, and holding it flat would mislead a
    # schedule-aware forecast, so an LR log that ends well before the horizon is not used at all.
    spacing = int(np.median(np.diff(steps))) if len(steps) > 1 else 1
    if steps[-1] + max(spacing, 1) < horizon:
        return None
    starts = np.r_[0, steps[(steps > 0) & (steps <= horizon)]].astype(np.int64)
    held = values[np.clip(np.searchsorted(steps, starts, side="right") - 1, 0, None)]
    if len(starts) > max_segments:
        lengths = np.diff(np.r_[starts, horizon + 1]).astype(np.float64)
        keys = grid_bins(starts, horizon, max_segments)
        edges = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        held = np.add.reduceat(held * lengths, edges) / np.add.reduceat(lengths, edges)
        starts = starts[edges]
    ends = np.r_[starts[1:] - 1, horizon]
    longer = ends > starts  # a value held over several steps: a knot at each end; over one step: one knot
    knot_steps = np.column_stack([starts, np.where(longer, ends, -1)]).ravel()
    knot_lrs = np.repeat(held, 2)
    keep = knot_steps >= 0
    return LRSchedule.from_knots(knot_steps[keep], knot_lrs[keep])


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
