"""The shapes every reader returns: a ``Curve`` per series and a ``RunLog`` per path, plus the one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Curve", "LogReadError", "RunLog", "make_curve"]


class LogReadError(ValueError):
    """A log that cannot be read or analysed: missing, unreadable, truncated, empty, or without the asked series."""


@dataclass(frozen=True)
class Curve:
    """One logged series.

    Attributes:
        name: how ``--tag`` names it: the tag (or column), prefixed by the run directory when a log holds several runs.
        steps: int64, strictly increasing.
        values: float64 at ``steps``; NaN and inf are kept because a logged non-finite value is itself an anomaly.
        run: the TensorBoard run (directory relative to the path read) the series came from; ``""`` for the top one.
    """

    name: str
    steps: np.ndarray
    values: np.ndarray
    run: str = ""

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class RunLog:
    """Every numeric series found under one path.

    Attributes:
        source: the path given.
        kind: ``"tensorboard"``, ``"csv"`` or ``"jsonl"``.
        curves: series by name, in the order first seen.
        files: the files read.
    """

    source: Path
    kind: str
    curves: dict[str, Curve]
    files: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return list(self.curves)


def make_curve(name: str, steps: np.ndarray | list[float], values: np.ndarray | list[float], run: str = "") -> Curve:
    """Build a ``Curve`` from points in write order: sorted by step, and a repeated step keeps its last write.

    A resumed run logs some steps again after a restart; the later write is the one that survived, as in TensorBoard.

    Raises:
        LogReadError: if a step is not a whole number.
    """
    steps_arr = np.asarray(steps, dtype=np.float64)
    values_arr = np.asarray(values, dtype=np.float64)
    if steps_arr.size and not np.all(np.isfinite(steps_arr) & (steps_arr == np.round(steps_arr))):
        bad = steps_arr[~(np.isfinite(steps_arr) & (steps_arr == np.round(steps_arr)))][0]
        raise LogReadError(f"Expected the steps of `{name}` to be whole numbers, but got {bad!r}")
    int_steps = steps_arr.astype(np.int64)
    if int_steps.size > 1 and not np.all(int_steps[1:] > int_steps[:-1]):
        # Stable sort on the reversed arrays, then np.unique's first occurrence = the last write of each step.
        reversed_steps = int_steps[::-1]
        unique_steps, first = np.unique(reversed_steps, return_index=True)
        int_steps, values_arr = unique_steps, values_arr[::-1][first]
    return Curve(name=name, steps=int_steps, values=values_arr, run=run)
