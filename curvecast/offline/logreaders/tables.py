"""Tables of step and value columns: CSV (Lightning's CSVLogger ``metrics.csv``, TensorBoard or W&B exports) and JSONL.

Each numeric column other than the step is a series; a row with an empty cell simply did not log that series (the
CSVLogger writes one sparse row per ``log_metrics`` call), while a cell reading ``nan`` or ``inf`` is a logged
non-finite value and is kept.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from curvecast.offline.logreaders.base import Curve, LogReadError, RunLog, make_curve

__all__ = ["STEP_COLUMNS", "read_csv", "read_jsonl"]

#: Column names taken as the step, best first (``_step`` is W&B's row counter, a last resort).
STEP_COLUMNS = ("step", "global_step", "trainer/global_step", "steps", "iteration", "iter", "it", "_step")

# Empty CSV cells become this number so that numpy's C parser can read the whole file at once (the Python csv
# module takes several seconds on a million rows); it is then turned into "missing", which is not the same as NaN.
_MISSING = -1.2345678901234567e308
_MISSING_TEXT = "-1.2345678901234567e308"
_EMPTY_CELL = re.compile(r"(?<=,)(?=,|\r?$)|^(?=,)", re.MULTILINE)


def _step_column(columns: list[str], path: Path) -> str:
    lowered = {column.strip().lower(): column for column in columns}
    for candidate in STEP_COLUMNS:
        if candidate in lowered:
            return lowered[candidate]
    raise LogReadError(
        f"Expected a step column in {path} (one of {', '.join(STEP_COLUMNS)}), but the columns are "
        f"{', '.join(columns) or 'none'}"
    )


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _table_curves(columns: list[str], table: np.ndarray, path: Path) -> dict[str, Curve]:
    """Series from a float table whose missing cells hold ``_MISSING``."""
    step_name = _step_column(columns, path)
    step_index = columns.index(step_name)
    has_step = table[:, step_index] != _MISSING
    curves: dict[str, Curve] = {}
    for index, name in enumerate(columns):
        if index == step_index:
            continue
        column = table[:, index]
        present = has_step & (column != _MISSING)
        if present.any():
            curves[name] = make_curve(name, table[present, step_index], column[present])
    return curves


def read_csv(path: Path) -> RunLog:
    """Read a CSV file with a header row, a step column and numeric columns (text columns are ignored).

    Raises:
        LogReadError: if the file is unreadable, has no step column, or no numeric column.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise LogReadError(f"Cannot read {path} as a text table: {error}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise LogReadError(f"Expected a header row in {path}, but the file is empty")
    delimiter = "\t" if "\t" in lines[0] and "," not in lines[0] else ","
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    columns = [name.strip() for name in header]
    _step_column(columns, path)
    # A column is numeric if every non-empty cell among the first rows parses as a float.
    sample = list(csv.reader(lines[1:200], delimiter=delimiter))
    numeric = [
        i
        for i in range(len(columns))
        if all(_to_float(row[i]) is not None for row in sample if i < len(row) and row[i].strip())
    ]
    if len(lines) < 2:
        raise LogReadError(f"Expected data rows in {path}, but it holds only the header")
    table = None
    if delimiter == "," and _MISSING_TEXT not in text and '"' not in text:
        body = _EMPTY_CELL.sub(_MISSING_TEXT, "\n".join(lines[1:]))
        try:
            table = np.loadtxt(io.StringIO(body), delimiter=",", usecols=numeric, ndmin=2, dtype=np.float64)
        except ValueError:
            table = None  # a ragged or odd row: the slow path below names it
    if table is None:
        table = _slow_table(lines[1:], delimiter, numeric, path)
    return RunLog(
        source=path, kind="csv", curves=_table_curves([columns[i] for i in numeric], table, path), files=(path,)
    )


def _slow_table(rows: list[str], delimiter: str, numeric: list[int], path: Path) -> np.ndarray:
    table = np.full((len(rows), len(numeric)), _MISSING)
    for row_index, row in enumerate(csv.reader(rows, delimiter=delimiter)):
        for out, column in enumerate(numeric):
            cell = row[column].strip() if column < len(row) else ""
            if not cell:
                continue
            number = _to_float(cell)
            if number is None:
                raise LogReadError(
                    f"Expected a number in column {column + 1} of line {row_index + 2} of {path}, but got {cell!r}"
                )
            table[row_index, out] = number
    return table


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return None


def read_jsonl(path: Path) -> RunLog:
    """Read JSON lines (or one JSON array) of records.

    Two shapes are understood: wide records, ``{"step": 10, "loss": 0.5, "lr": 0.001}``, where each numeric key is a
    series; and long records, ``{"step": 10, "tag": "loss", "value": 0.5}`` (``tag``, ``name`` or ``metric``).

    Raises:
        LogReadError: if the file is unreadable, a line is not JSON, or no record has a step.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise LogReadError(f"Cannot read {path} as JSON lines: {error}") from None
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            records = json.loads(stripped)
        else:
            # One C-level parse of the whole file is several times faster than json.loads per line.
            records = json.loads("[" + ",".join(line for line in stripped.splitlines() if line.strip()) + "]")
    except json.JSONDecodeError:
        records = _records_line_by_line(stripped, path)
    records = [record for record in records if isinstance(record, dict)]
    if not records:
        raise LogReadError(f"Expected JSON records in {path}, but found none")
    step_key = _step_column(list(records[0]), path)
    points: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        step = _number(record.get(step_key))
        if step is None or math.isnan(step):
            continue
        name = next((record[key] for key in ("tag", "name", "metric") if isinstance(record.get(key), str)), None)
        items = [(name, record.get("value"))] if name is not None and "value" in record else record.items()
        for key, raw in items:
            value = _number(raw)
            if key == step_key or value is None:
                continue
            series = points.setdefault(key, ([], []))
            series[0].append(step)
            series[1].append(value)
    curves = {name: make_curve(name, steps, values) for name, (steps, values) in points.items()}
    return RunLog(source=path, kind="jsonl", curves=curves, files=(path,))


def _records_line_by_line(text: str, path: Path) -> list[object]:
    records: list[object] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise LogReadError(f"Expected a JSON object on line {number} of {path}, but got: {error.msg}") from None
    return records
