"""What the CSV and JSON readers share: the step column's names, errors that quote a file only when it was named, and
the points of each series gathered block by block.

A file found inside a directory may be a symlink to any file at all, so errors about it give the line, never its
content; only a file the user named (``named=True``) has a short piece of a bad cell or its header quoted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curvecast.logreaders.base import Curve, LogReadError, make_curve

__all__ = ["STEP_COLUMNS", "SeriesColumns", "list_columns", "quote_cell", "step_column"]

#: Column names taken as the step, best first (``_step`` is W&B's row counter, a last resort).
STEP_COLUMNS = ("step", "global_step", "trainer/global_step", "steps", "iteration", "iter", "it", "_step")

_QUOTED_CHARS = 40  # the most of a cell an error quotes
_LISTED_COLUMNS = 12  # the most column names an error lists


def quote_cell(cell: str, named: bool) -> str:
    """A short, escaped piece of ``cell`` for an error about a file the user named; nothing for any other file."""
    if not named:
        return "a value that is not a number"
    return repr(cell[:_QUOTED_CHARS]) + ("..." if len(cell) > _QUOTED_CHARS else "")


def list_columns(columns: list[str]) -> str:
    shown = ", ".join(repr(name[:_QUOTED_CHARS])[1:-1] for name in columns[:_LISTED_COLUMNS])
    more = f", ... ({len(columns) - _LISTED_COLUMNS} more)" if len(columns) > _LISTED_COLUMNS else ""
    return (shown + more) or "none"


def step_column(columns: list[str], path: Path, named: bool, what: str = "columns") -> str:
    lowered = {column.strip().lower(): column for column in columns}
    for candidate in STEP_COLUMNS:
        if candidate in lowered:
            return lowered[candidate]
    found = f"the {what} are {list_columns(columns)}" if named else f"none of its {len(columns)} {what} is one"
    raise LogReadError(f"Expected a step column in {path} (one of {', '.join(STEP_COLUMNS)}), but {found}")


class SeriesColumns:
    """The points of each series as they are read: arrays per block, joined once at the end."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def add(self, name: str, steps: np.ndarray, values: np.ndarray) -> None:
        if len(steps):
            parts = self._parts.setdefault(name, ([], []))
            parts[0].append(steps)
            parts[1].append(values)

    def curves(self, source: Path) -> dict[str, Curve]:
        curves: dict[str, Curve] = {}
        for name in list(self._parts):
            steps, values = self._parts.pop(name)  # each series' blocks are freed as its curve is built
            curves[name] = make_curve(name, _joined(steps), _joined(values), source=source)
        return curves


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)  # concatenate would copy even a single part
