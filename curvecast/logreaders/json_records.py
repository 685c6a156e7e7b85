"""JSON lines, or one JSON array, of records with a step: wide (a key per series) or long (``tag`` and ``value``).

The reader streams: records are decoded batch by batch into typed arrays (8 bytes a number), so memory follows the
points kept rather than the file, even for a single JSON array of a million records.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

import curvecast.logreaders.files as limits
from curvecast.logreaders.base import MAX_STEP, LogReadError, RunLog
from curvecast.logreaders.columns import SeriesColumns, step_column
from curvecast.logreaders.files import iter_blocks, iter_text_blocks, open_log_file

__all__ = ["read_jsonl"]

# JSON is parsed into a dict per record, about ten times the text's size: 256 KiB blocks keep that under 3 MB, which
# matters for a small log (1 MiB blocks peaked at 3.5 times a 5 MB file), and read as fast.
_JSON_BLOCK_BYTES = 256 << 10


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
        self.columns = SeriesColumns()
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
            self.step_key = step_column(list(record), self.path, self.named, what="keys")
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
