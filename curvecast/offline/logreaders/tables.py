"""Tables of step and value columns: CSV (Lightning's CSVLogger ``metrics.csv``, TensorBoard or W&B exports) and JSONL.

Each numeric column other than the step is a series; a row with an empty cell simply did not log that series (the
CSVLogger writes one sparse row per ``log_metrics`` call), while a cell reading ``nan`` or ``inf`` is a logged
non-finite value and is kept.

Both readers stream: the file is read in blocks of whole lines and each block's numbers go straight into arrays, so
memory follows the points kept (16 bytes each) rather than the file: holding the whole text, its lines and a Python
object per row cost 9-10 times the file's size.

A file found inside a directory may be a symlink to any file at all, so errors about it give the line, never its
content; only a file the user named (``named=True``) has a short piece of a bad cell or its header quoted.
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from curvecast.offline.logreaders import files as limits
from curvecast.offline.logreaders.base import MAX_STEP, Curve, LogReadError, RunLog, make_curve, valid_steps
from curvecast.offline.logreaders.files import iter_blocks, iter_text_blocks, open_log_file

__all__ = ["STEP_COLUMNS", "read_csv", "read_jsonl"]

#: Column names taken as the step, best first (``_step`` is W&B's row counter, a last resort).
STEP_COLUMNS = ("step", "global_step", "trainer/global_step", "steps", "iteration", "iter", "it", "_step")

# Empty CSV cells become this number so that numpy's C parser can read a block at once (the Python csv module takes
# several seconds on a million rows); it is then turned into "missing", which is not the same as NaN.
_MISSING = -1.2345678901234567e308
_MISSING_TEXT = "-1.2345678901234567e308"
# Bytes of CSV parsed at a time. A block's text, lines and table take ~7 times its size: at 1 MiB that stays under
# 10 MB, and numpy's per-call cost is already invisible (4 MiB blocks read no faster and peak at 3.7x a 10 MB file).
_CSV_BLOCK_BYTES = 1 << 20
# JSON is parsed into a dict per record, about ten times the text's size: 256 KiB blocks keep that under 3 MB, which
# matters for a small log (1 MiB blocks peaked at 3.5 times a 5 MB file), and read as fast.
_JSON_BLOCK_BYTES = 256 << 10
_SAMPLE_ROWS = 200  # rows of the first block that decide which columns are numeric
_QUOTED_CHARS = 40  # the most of a cell an error quotes
_LISTED_COLUMNS = 12  # the most column names an error lists


def _quote(cell: str, named: bool) -> str:
    """A short, escaped piece of ``cell`` for an error about a file the user named; nothing for any other file."""
    if not named:
        return "a value that is not a number"
    return repr(cell[:_QUOTED_CHARS]) + ("..." if len(cell) > _QUOTED_CHARS else "")


def _list_columns(columns: list[str]) -> str:
    shown = ", ".join(repr(name[:_QUOTED_CHARS])[1:-1] for name in columns[:_LISTED_COLUMNS])
    more = f", ... ({len(columns) - _LISTED_COLUMNS} more)" if len(columns) > _LISTED_COLUMNS else ""
    return (shown + more) or "none"


def _step_column(columns: list[str], path: Path, named: bool, what: str = "columns") -> str:
    lowered = {column.strip().lower(): column for column in columns}
    for candidate in STEP_COLUMNS:
        if candidate in lowered:
            return lowered[candidate]
    found = f"the {what} are {_list_columns(columns)}" if named else f"none of its {len(columns)} {what} is one"
    raise LogReadError(f"Expected a step column in {path} (one of {', '.join(STEP_COLUMNS)}), but {found}")


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


class _Columns:
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


# -- CSV ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CsvLayout:
    """Where the numbers are: the numeric columns of a row (the step among them) and their names."""

    delimiter: str
    numeric: list[int]
    names: list[str]
    step: int  # the step column's position in ``numeric``


def _csv_layout(header: str, sample: list[str], path: Path, named: bool) -> _CsvLayout:
    delimiter = "\t" if "\t" in header and "," not in header else ","
    columns = [name.strip() for name in _parse_csv([header], delimiter, 1, path)[0]]
    step_name = _step_column(columns, path, named)
    rows = _parse_csv(sample, delimiter, 2, path)
    # A column is numeric if every non-empty cell among the first rows parses as a float; the step always is.
    numeric = [
        index
        for index, name in enumerate(columns)
        if name == step_name
        or all(_to_float(row[index]) is not None for row in rows if index < len(row) and row[index].strip())
    ]
    names = [columns[index] for index in numeric]
    return _CsvLayout(delimiter, numeric, names, names.index(step_name))


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
    columns = _Columns()
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


def _read_csv_block(text: str, first_line: int, layout: _CsvLayout, columns: _Columns, path: Path, named: bool) -> bool:
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
            if not cell:
                continue
            number = _to_float(cell)
            if number is None:
                raise LogReadError(
                    f"Expected a number in column {column + 1} of line {first_line + row_index} of {path}, but got "
                    f"{_quote(cell, named)}"
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


# -- JSON lines and JSON arrays ------------------------------------------------------------------------------------


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return None


def _is_step(step: float) -> bool:
    return -MAX_STEP <= step <= MAX_STEP and step == math.floor(step)


class _JsonPoints:
    """The points of JSON records as they are read, batch by batch, into typed arrays (8 bytes a number)."""

    def __init__(self, path: Path, named: bool) -> None:
        self.path, self.named = path, named
        self.columns = _Columns()
        self.records = 0
        self.step_key: str | None = None

    def add(self, batch: Iterable[tuple[int, object]]) -> None:
        points: dict[str, tuple[array[float], array[float]]] = {}
        for line, record in batch:
            if isinstance(record, dict):
                self._add_record(line, record, points)
        for name, (steps, values) in points.items():
            self.columns.add(name, np.frombuffer(steps).astype(np.int64), np.frombuffer(values))

    def _add_record(self, line: int, record: dict, points: dict[str, tuple[array[float], array[float]]]) -> None:
        self.records += 1
        if self.step_key is None:  # the first record names the step
            self.step_key = _step_column(list(record), self.path, self.named, what="keys")
        step = _number(record.get(self.step_key))
        if step is None or math.isnan(step):
            return  # a record without a step (a summary, say) is not a point
        if not _is_step(step):
            got = f": {step:g}" if self.named else ""
            raise LogReadError(
                f"Expected whole-number steps of at most 2**53 in {self.path}, but the step on line {line} is not "
                f"one{got}"
            )
        items = record.items()
        if "value" in record:  # a long record, {"step": 10, "tag": "loss", "value": 0.5}, if it names its series
            name = next((record[key] for key in ("tag", "name", "metric") if isinstance(record.get(key), str)), None)
            items = [(name, record["value"])] if name is not None else items
        for key, raw in items:
            if key == self.step_key:
                continue
            value = raw if type(raw) is float else _number(raw)  # parse_int=float: nearly every number is a float
            if value is not None:
                series = points.get(key) or points.setdefault(key, (array("d"), array("d")))
                series[0].append(step)
                series[1].append(value)


def read_jsonl(path: Path, *, named: bool = True) -> RunLog:
    """Read JSON lines (or one JSON array) of records.

    Two shapes are understood: wide records, ``{"step": 10, "loss": 0.5, "lr": 0.001}``, where each numeric key is a
    series; and long records, ``{"step": 10, "tag": "loss", "value": 0.5}`` (``tag``, ``name`` or ``metric``). An
    integer too large for a float becomes inf, as a logged overflow.

    Args:
        path: the file.
        named: whether the user named this file (an error may then quote its keys) rather than a directory.

    Raises:
        LogReadError: if the file is not a readable regular text file, a line is not JSON (or too deeply nested), no
            record has a step, or a step is not a whole number.
    """
    points = _JsonPoints(path, named)
    with open_log_file(path) as handle:
        batches = _json_array_batches(handle, path) if _starts_an_array(handle) else _jsonl_batches(handle, path)
        for batch in batches:
            points.add(batch)
    if not points.records:
        raise LogReadError(f"Expected JSON records in {path}, but found none")
    curves = points.columns.curves(path)
    if not curves:
        raise LogReadError(f"Expected numbers besides the step in the JSON records of {path}, but found none")
    return RunLog(source=path, kind="jsonl", curves=curves, files=(path,))


def _starts_an_array(handle: BinaryIO) -> bool:
    head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    handle.seek(0)
    return head.startswith(b"[")


def _loads(text: str) -> object:
    # parse_int=float: Python refuses to turn a string of more than 4300 digits into an int (a denial-of-service
    # guard), while float() of one gives inf; the value becomes a float anyway.
    return json.loads(text, parse_int=float)


def _jsonl_batches(handle: BinaryIO, path: Path) -> Iterator[list[tuple[int, object]]]:
    """The records of JSON lines, a block of lines at a time, each with its line number."""
    for first_line, text in iter_text_blocks(handle, path, _JSON_BLOCK_BYTES):
        lines = text.split("\n")
        numbers = [first_line + index for index, line in enumerate(lines) if line and not line.isspace()]
        kept = [lines[number - first_line] for number in numbers]
        try:  # one C-level parse of the block is several times faster than json.loads per line
            records = _loads("[" + ",".join(kept) + "]")
        except (ValueError, RecursionError):
            records = None
        if not isinstance(records, list) or len(records) != len(kept):  # a bad line, or two records on one line
            records = [_parse_json_line(line, number, path) for line, number in zip(kept, numbers, strict=True)]
        yield list(zip(numbers, records, strict=True))


def _parse_json_line(line: str, number: int, path: Path) -> object:
    try:
        record = _loads(line)
    except json.JSONDecodeError as error:
        raise LogReadError(f"Expected a JSON object on line {number} of {path}, but got: {error.msg}") from None
    except RecursionError:
        raise LogReadError(
            f"Expected a JSON object on line {number} of {path}, but it is nested too deeply to parse"
        ) from None
    return record


_ARRAY_BATCH = 10_000  # records decoded from a JSON array before they are turned into points


class _ArrayStream:
    """The elements of one JSON array, decoded as the file is read: a pandas export is a single line of any length."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.path = path
        self.blocks = iter_blocks(handle, path, _JSON_BLOCK_BYTES)
        self.pending_bytes = b""
        self.text, self.position = "", 0
        self.line, self.counted = 1, 0  # the line of text[counted]
        self.ended = False
        self.decoder = json.JSONDecoder(parse_int=float)

    def _fill(self) -> bool:
        """Read one more block into ``text``; False at the end of the file."""
        block = next(self.blocks, None)
        if block is None:
            self.ended = True
            return False
        data = self.pending_bytes + block
        cut = len(data) - _incomplete_utf8_tail(data)
        self.pending_bytes = data[cut:]
        try:
            decoded = data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            raise LogReadError(f"Expected UTF-8 text in {self.path}, but near line {self._line()} it is not") from None
        self.line += self.text.count("\n", self.counted, self.position)
        self.text, self.counted = self.text[self.position :] + decoded.lstrip("\ufeff"), 0
        self.position = 0
        return True

    def _line(self) -> int:
        self.line += self.text.count("\n", self.counted, self.position)
        self.counted = self.position
        return self.line

    def _next_char(self) -> str:
        """The next character that is not white space ('' at the end), which is not consumed."""
        while True:
            while self.position < len(self.text) and self.text[self.position] in " \t\r\n":
                self.position += 1
            if self.position < len(self.text) or not self._fill():
                return self.text[self.position : self.position + 1]

    def _expect(self, allowed: str, what: str) -> str:
        char = self._next_char()
        if not char or char not in allowed:
            found = "the file ends" if not char else "it holds something else"
            raise LogReadError(f"Expected {what} on line {self._line()} of {self.path}, but {found}")
        self.position += 1
        return char

    def _element(self) -> object:
        while True:
            try:
                element, end = self.decoder.raw_decode(self.text, self.position)
            except json.JSONDecodeError as error:
                if _may_be_cut(error, len(self.text)) and not self.ended:
                    if len(self.text) - self.position > limits.MAX_LINE_BYTES:
                        raise self._too_long() from None
                    if self._fill():
                        continue
                self.position = min(error.pos, len(self.text))
                raise LogReadError(
                    f"Expected a JSON record on line {self._line()} of {self.path}, but got: {error.msg}"
                ) from None
            except RecursionError:
                raise LogReadError(
                    f"Expected a JSON record on line {self._line()} of {self.path}, but it is nested too deeply"
                ) from None
            if end < len(self.text) or self.ended or not self._fill():  # a number cut by the block's end is not done
                if end - self.position > limits.MAX_LINE_BYTES:
                    raise self._too_long()
                self.position = end
                return element

    def _too_long(self) -> LogReadError:
        return LogReadError(
            f"Expected JSON records of at most {limits.MAX_LINE_BYTES:,} bytes in {self.path}, but the one on line "
            f"{self._line()} is longer: the file is not a log of metrics"
        )

    def batches(self) -> Iterator[list[tuple[int, object]]]:
        self._expect("[", "a JSON array")
        batch: list[tuple[int, object]] = []
        if self._next_char() == "]":
            self.position += 1
        else:
            while True:
                self._next_char()
                batch.append((self._line(), self._element()))
                if len(batch) == _ARRAY_BATCH:
                    yield batch
                    batch = []
                if self._expect(",]", "',' or ']' after a record") == "]":
                    break
        yield batch
        if self._next_char():
            raise LogReadError(
                f"Expected the end of {self.path} after its JSON array, but line {self._line()} holds more"
            )


# A token cut by the end of a block (``tru``, ``-Infinit``, ``1e``, half a ``\u`` escape) fails within this many
# characters of the end; an error further back is in the text itself.
_CUT_TOKEN_CHARS = 32


def _may_be_cut(error: json.JSONDecodeError, text_length: int) -> bool:
    """Whether a decoding error may come from the end of the text read so far rather than from the JSON itself."""
    return error.msg.startswith("Unterminated string") or error.pos >= text_length - _CUT_TOKEN_CHARS


def _incomplete_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` begin a UTF-8 character that the next block completes."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:  # a lead byte: complete if its sequence fits
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if needed > back else 0
    return 0


def _json_array_batches(handle: BinaryIO, path: Path) -> Iterator[list[tuple[int, object]]]:
    return _ArrayStream(handle, path).batches()
