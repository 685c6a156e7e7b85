"""CSV tables of a step column and value columns: Lightning's CSVLogger ``metrics.csv``, TensorBoard or W&B exports.

Each numeric column other than the step is a series; a row with an empty cell (or ``N/A``, ``null`` and the like)
simply did not log that series (the CSVLogger writes one sparse row per ``log_metrics`` call), while a cell reading
``nan`` or ``inf`` is a logged non-finite value and is kept.

The reader streams: the file is read in blocks of whole lines and each block's numbers go straight into arrays, so
memory follows the points kept (16 bytes each) rather than the file: holding the whole text, its lines and a Python
object per row cost 9-10 times the file's size.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curvecast.logreaders.base import LogReadError, RunLog, valid_steps
from curvecast.logreaders.columns import SeriesColumns, quote_cell, step_column
from curvecast.logreaders.files import iter_text_blocks, open_log_file

__all__ = ["read_csv"]

# Empty CSV cells become this number so that numpy's C parser can read a block at once (the Python csv module takes
# several seconds on a million rows); it is then turned into "missing", which is not the same as NaN.
_MISSING = -1.2345678901234567e308
_MISSING_TEXT = "-1.2345678901234567e308"
# Bytes of CSV parsed at a time. A block's text, lines and table take ~7 times its size: at 1 MiB that stays under
# 10 MB, and numpy's per-call cost is already invisible (4 MiB blocks read no faster and peak at 3.7x a 10 MB file).
_CSV_BLOCK_BYTES = 1 << 20
_SAMPLE_ROWS = 200  # rows of the first block that decide which columns are numeric
# Cells that say "no value" as exports and hand-edited tables write it (pandas reads them as missing too): the row did
# not log that series, as an empty cell says. ``nan`` is no such word: it is a logged non-finite value, and is kept.
_NO_VALUE = frozenset({"n/a", "na", "null", "none", "-", "?", "#n/a"})


def _no_value(cell: str) -> bool:
    """Whether ``cell`` holds no value: empty, or one of the words for none (``_NO_VALUE``)."""
    cell = cell.strip()
    return not cell or cell.lower() in _NO_VALUE


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


@dataclass(frozen=True)
class _CsvLayout:
    """Where the numbers are: the numeric columns of a row (the step among them) and their names."""

    delimiter: str
    numeric: list[int]
    names: list[str]
    step: int  # the step column's position in ``numeric``


def _csv_layout(header: str, sample: list[str], path: Path, named: bool) -> _CsvLayout:
    delimiter = "\t" if "\t" in header and "," not in header else ","
    columns = _distinct_names([name.strip() for name in _parse_csv([header], delimiter, 1, path)[0]])
    step_name = step_column(columns, path, named)
    rows = _parse_csv(sample, delimiter, 2, path)
    # A column is numeric if every cell with a value among the first rows parses as a float; the step always is.
    numeric = [
        index
        for index, name in enumerate(columns)
        if name == step_name
        or all(_to_float(row[index]) is not None for row in rows if index < len(row) and not _no_value(row[index]))
    ]
    names = [columns[index] for index in numeric]
    return _CsvLayout(delimiter, numeric, names, names.index(step_name))


def _distinct_names(columns: list[str]) -> list[str]:
    """The header's names, with an empty or repeated one named by its position: series are kept by name, so two
    columns named alike would merge into one series (the later column's values overwriting the earlier's)."""
    seen: set[str] = set()
    names = []
    for index, name in enumerate(columns):
        if not name:
            names.append(f"column {index + 1}")
        else:
            names.append(f"{name} (column {index + 1})" if name in seen else name)
        seen.add(name)
    return names


def _parse_csv(lines: list[str], delimiter: str, first_line: int, path: Path) -> list[list[str]]:
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as error:  # e.g. a cell past csv.field_size_limit(), 128 KiB
        raise LogReadError(f"Cannot parse line {first_line + reader.line_num - 1} of {path} as CSV: {error}") from None


def read_csv(path: Path, *, named: bool = True) -> RunLog:
    """Read a CSV file with a header row, a step column and numeric columns (text columns are ignored).

    Args:
        path: the file.
        named: whether the user named this file (an error may then quote a short piece of it) rather than a directory.

    Raises:
        LogReadError: if the file is not a readable regular text file, has no step column, no data rows, no numeric
            column, or a cell of a numeric column is not a number.
    """
    columns = SeriesColumns()
    with open_log_file(path) as handle:
        blocks = iter_text_blocks(handle, path, _CSV_BLOCK_BYTES)
        _first, text = next(blocks, (1, ""))
        header, _newline, body = text.partition("\n")
        if not header.strip():
            raise LogReadError(f"Expected a header row in {path}, but its first line is empty")
        layout = _csv_layout(header, body.split("\n", _SAMPLE_ROWS)[:_SAMPLE_ROWS], path, named)
        has_rows = _read_csv_block(body, 2, layout, columns, path, named)
        for first_line, text in blocks:
            has_rows |= _read_csv_block(text, first_line, layout, columns, path, named)
    if not has_rows:
        raise LogReadError(f"Expected data rows in {path}, but it holds only the header")
    curves = columns.curves(path)
    if not curves:
        raise LogReadError(f"Expected a column of numbers besides the step in {path}, but found none")
    return RunLog(source=path, kind="csv", curves=curves, files=(path,))


def _read_csv_block(
    text: str, first_line: int, layout: _CsvLayout, columns: SeriesColumns, path: Path, named: bool
) -> bool:
    """Add the points of a block of CSV lines to ``columns``; returns whether it held any row."""
    if not text or text.isspace():
        return False
    table = _fast_table(text, layout)
    if table is None:
        table = _slow_table(text.split("\n"), layout, first_line, path, named)
    steps = table[:, layout.step]
    has_step = steps != _MISSING
    if not valid_steps(steps[has_step]).all():
        _raise_bad_step(text.split("\n"), layout, first_line, path, named)
    for out, name in enumerate(layout.names):
        if out != layout.step:
            present = has_step & (table[:, out] != _MISSING)
            columns.add(name, steps[present].astype(np.int64), table[present, out])
    return True


def _fast_table(text: str, layout: _CsvLayout) -> np.ndarray | None:
    """The block parsed by numpy's C parser, or None when it needs the csv module (quotes) or a row is odd."""
    if '"' in text or _MISSING_TEXT in text:
        return None
    lines = _fill_empty_cells(text, layout.delimiter).split("\n")
    try:
        return np.loadtxt(lines, delimiter=layout.delimiter, usecols=layout.numeric, ndmin=2, dtype=np.float64)
    except ValueError:
        return None  # a ragged or odd row: the slow path reads it, or names it


def _fill_empty_cells(text: str, delimiter: str) -> str:
    """``text`` with ``_MISSING_TEXT`` in each empty cell, which numpy's parser would refuse (``str.replace`` is ten
    times faster than a regular expression here)."""
    empty, filled = delimiter + delimiter, delimiter + _MISSING_TEXT + delimiter
    if empty in text:
        text = text.replace(empty, filled).replace(empty, filled)  # twice: in ",,," the matches overlap
    text = text.replace("\n" + delimiter, "\n" + _MISSING_TEXT + delimiter)
    text = text.replace(delimiter + "\n", delimiter + _MISSING_TEXT + "\n")
    if text.startswith(delimiter):
        text = _MISSING_TEXT + text
    if text.endswith(delimiter):
        text += _MISSING_TEXT
    return text


def _slow_table(lines: list[str], layout: _CsvLayout, first_line: int, path: Path, named: bool) -> np.ndarray:
    """The block parsed by the csv module, a row per line: slow, but it reads quotes and names a bad cell."""
    table = np.full((len(lines), len(layout.numeric)), _MISSING)
    for row_index, row in enumerate(_parse_csv(lines, layout.delimiter, first_line, path)):
        for out, column in enumerate(layout.numeric):
            cell = row[column].strip() if column < len(row) else ""
            if _no_value(cell):
                continue
            number = _to_float(cell)
            if number is None:
                raise LogReadError(
                    f"Expected a number in column {column + 1} of line {first_line + row_index} of {path}, but got "
                    f"{quote_cell(cell, named)}"
                )
            table[row_index, out] = number
    return table


def _raise_bad_step(lines: list[str], layout: _CsvLayout, first_line: int, path: Path, named: bool) -> None:
    """Name the line of the first step that is not a whole number (numpy's parser skips blank lines, so re-read)."""
    steps = _slow_table(lines, layout, first_line, path, named)[:, layout.step]
    row = int(np.argmax((steps != _MISSING) & ~valid_steps(steps)))
    got = f": {steps[row]:g}" if named else ""
    raise LogReadError(
        f"Expected whole-number steps of at most 2**53 in {path}, but the step on line {first_line + row} is "
        f"not one{got}"
    )
