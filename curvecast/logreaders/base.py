"""The shapes every reader returns: a ``Curve`` per series and a ``RunLog`` per path, plus the one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["MAX_STEP", "Curve", "LogReadError", "RunLog", "make_curve", "printable", "valid_steps"]

# Steps are read as float64 by the table readers and the forecaster; above 2**53 a float64 no longer holds every whole
# number, so two steps could merge, and a float past 2**63 does not fit the int64 step arrays at all.
MAX_STEP = 2**53


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


def printable(text: str, limit: int = 60) -> str:
    """``text`` made safe to quote in a one-line message: cut to ``limit`` characters, control characters escaped.

    Names and cells come from files, which may hold newlines or terminal escape sequences.
    """
    shown = text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in shown)


def valid_steps(steps: np.ndarray) -> np.ndarray:
    """Which of ``steps`` (float64) are usable: finite whole numbers within +-``MAX_STEP``."""
    return np.isfinite(steps) & (steps == np.round(steps)) & (np.abs(steps) <= MAX_STEP)


def _int_steps(name: str, steps: np.ndarray | list[float], source: Path | None) -> np.ndarray:
    """``steps`` as int64, checked: an integer array (what the readers build) is range-checked without a copy."""
    array = np.asarray(steps)
    if array.dtype.kind in "iu" and (not array.size or (array.min() >= -MAX_STEP and array.max() <= MAX_STEP)):
        return array.astype(np.int64, copy=False)
    as_float = array.astype(np.float64, copy=False)
    valid = valid_steps(as_float)
    if not valid.all():
        where = f" in {source}" if source is not None else ""
        raise LogReadError(
            f"Expected the steps of `{printable(name)}`{where} to be whole numbers of at most 2**53, but got "
            f"{float(as_float[~valid][0]):g}"
        )
    return as_float.astype(np.int64)


def make_curve(
    name: str,
    steps: np.ndarray | list[float],
    values: np.ndarray | list[float],
    run: str = "",
    source: Path | None = None,
) -> Curve:
    """Build a ``Curve`` from points in write order: sorted by step, and a repeated step keeps its last write.

    A resumed run logs some steps again after a restart; the later write is the one that survived, as in TensorBoard.
    Integer arrays are used as they are (not copied), so a caller should not change them afterwards.

    Raises:
        LogReadError: if a step is not a whole number within +-``MAX_STEP``; the message names ``source`` if given.
    """
    int_steps = _int_steps(name, steps, source)
    values_arr = np.asarray(values, dtype=np.float64)
    if int_steps.size > 1 and not np.all(int_steps[1:] > int_steps[:-1]):
        # Stable sort on the reversed arrays, then np.unique's first occurrence = the last write of each step.
        reversed_steps = int_steps[::-1]
        unique_steps, first = np.unique(reversed_steps, return_index=True)
        int_steps, values_arr = unique_steps, values_arr[::-1][first]
    return Curve(name=name, steps=int_steps, values=values_arr, run=run)
