"""Opening the files of a log safely: regular files only, reads bounded in size, a bounded search of directories.

What a log path points at is not trusted: it comes from the user, and a log directory holds whatever the run (or
someone else) put there. A FIFO blocks the ``open`` itself, a character device such as ``/dev/zero`` never ends, and a
symlink may lead anywhere. So only regular files are read: the type of the symlink's target is checked with ``stat``
before opening (a FIFO is never opened) and again on the open descriptor (in case the path changed in between), a
log stops at ``MAX_LOG_BYTES``, and a line longer than ``MAX_LINE_BYTES`` is an error, not a buffer that keeps growing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from curvecast.logreaders.base import LogReadError

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_LOG_BYTES",
    "MAX_WALK_ENTRIES",
    "FoundFiles",
    "check_log_size",
    "find_files",
    "iter_blocks",
    "iter_text_blocks",
    "open_log_file",
    "read_chunk",
    "regular_file_size",
]

# The most bytes read for one log, all its files together. The readers keep about 16 bytes per logged point, less
# than a point takes in the file, so memory is not what this bounds: parsing runs at 10-100 MB/s, so a bigger log
# takes minutes, and a log that size is usually a whole sweep, better analysed one run at a time.
MAX_LOG_BYTES = 4 << 30
# The longest line of a CSV or JSONL log, and the largest record of a JSON array. A row of metrics takes well under a
# kilobyte (a wide export with hundreds of columns, tens of kilobytes); a longer line is not a log row, and reading it
# means holding all of it in memory at once.
MAX_LINE_BYTES = 1 << 20
# Directory entries looked at while searching a directory for logs. A run directory holds a handful and a sweep a few
# thousand; past this the path is probably a home directory or a dataset, whose walk alone would take minutes.
MAX_WALK_ENTRIES = 200_000

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # should the path become a FIFO after the stat, the open returns instead of waiting
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _describe_type(mode: int) -> str:
    return next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")


def _size_text(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} B"


def regular_file_size(path: Path) -> int:
    """The size of the regular file at ``path`` (a symlink is followed), found without opening it.

    Raises:
        LogReadError: if ``path`` is missing, a dangling symlink, or not a regular file (a FIFO, a device...).
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        what = "a symlink to nothing" if os.path.islink(path) else "missing"
        raise LogReadError(f"Expected a log file, but {path} is {what}") from None
    except OSError as error:
        raise LogReadError(f"Cannot read {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        raise LogReadError(
            f"Expected a regular file, but {path} is {_describe_type(status.st_mode)}: curvecast reads only "
            "regular files"
        )
    return status.st_size


def check_log_size(size: int, path: Path) -> None:
    """Raise ``LogReadError`` if ``size`` bytes is more than a log may hold (``MAX_LOG_BYTES``)."""
    if size > MAX_LOG_BYTES:
        raise LogReadError(
            f"Expected a log of at most {_size_text(MAX_LOG_BYTES)}, but {path} holds {_size_text(size)}: "
            "pass one run's file or directory"
        )


@contextmanager
def open_log_file(path: Path) -> Iterator[BinaryIO]:
    """Open a log file for binary reading, after checking that it is a regular file no larger than a log may be.

    Raises:
        LogReadError: if ``path`` is not a readable regular file, or is larger than ``MAX_LOG_BYTES``.
    """
    check_log_size(regular_file_size(path), path)
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        raise LogReadError(f"Cannot read {path}: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):  # the path was replaced between the stat and the open
            raise LogReadError(f"Expected a regular file, but {path} is now {_describe_type(mode)}")
        yield handle


def iter_blocks(handle: BinaryIO, path: Path, block_bytes: int) -> Iterator[bytes]:
    """Successive reads of up to ``block_bytes``, stopping with an error past ``MAX_LOG_BYTES`` (a growing file)."""
    total = 0
    while block := read_chunk(handle, path, block_bytes):
        total += len(block)
        check_log_size(total, path)
        yield block


def read_chunk(handle: BinaryIO, path: Path, size: int) -> bytes:
    """Up to ``size`` bytes from ``handle``; a read error (say, from a vanished mount) becomes a ``LogReadError``."""
    try:
        return handle.read(size)
    except OSError as error:
        raise LogReadError(f"Cannot read {path}: {error.strerror or error}") from None


def iter_text_blocks(handle: BinaryIO, path: Path, block_bytes: int) -> Iterator[tuple[int, str]]:
    """The file as UTF-8 text in blocks of whole lines: ``(number of the block's first line, text)``.

    Each block but the last ends with a newline; ``\\r\\n`` becomes ``\\n``, as does a lone ``\\r`` in a file whose
    lines end in it (classic Mac OS, some spreadsheet exports), and the byte-order mark of the first line is dropped.

    Raises:
        LogReadError: if a line is longer than ``MAX_LINE_BYTES``, or the text is not UTF-8 or holds a NUL byte.
    """
    first_line, pending = 1, b""
    cr_lines: bool | None = None  # whether lines end in a lone "\r": decided by the first line end seen
    for block in iter_blocks(handle, path, block_bytes):
        if cr_lines is None and (b"\n" in block or b"\r" in block):
            cr_lines = b"\n" not in block
        if cr_lines:
            block = block.replace(b"\r", b"\n")
        data = pending + block if pending else block
        cut = data.rfind(b"\n") + 1
        whole, pending = data[:cut], data[cut:]
        if len(pending) > MAX_LINE_BYTES:
            raise _long_line_error(path, first_line + whole.count(b"\n"))
        if whole:
            yield first_line, _decode_lines(whole, first_line, path)
            first_line += whole.count(b"\n")
    if pending:
        yield first_line, _decode_lines(pending, first_line, path)


def _long_line_error(path: Path, line: int) -> LogReadError:
    return LogReadError(
        f"Expected lines of at most {_size_text(MAX_LINE_BYTES)} in {path}, but line {line} is longer: "
        "the file is not a log of metrics"
    )


def _decode_lines(data: bytes, first_line: int, path: Path) -> str:
    """Whole lines of ``data`` as text, after checking their length and that they are text at all."""
    if len(data) > MAX_LINE_BYTES:  # a block this small cannot hold a line that is too long
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        lengths = np.diff(np.r_[-1, ends, len(data)])
        if lengths.max() > MAX_LINE_BYTES + 1:  # + 1: the newline itself
            raise _long_line_error(path, first_line + int(np.argmax(lengths > MAX_LINE_BYTES + 1)))
    nul = data.find(b"\x00")
    if nul >= 0:
        line = first_line + data.count(b"\n", 0, nul)
        raise LogReadError(f"Expected text in {path}, but line {line} holds a NUL byte: the file is binary")
    try:
        text = data.decode("utf-8-sig" if first_line == 1 else "utf-8")
    except UnicodeDecodeError as error:
        line = first_line + data.count(b"\n", 0, error.start)
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise LogReadError(
            f"Expected UTF-8 text in {path}, but line {line} holds the byte 0x{data[error.start]:02x} at column "
            f"{column}: save the log as UTF-8"
        ) from None
    return text.replace("\r\n", "\n") if "\r" in text else text


class FoundFiles(NamedTuple):
    """What a search of a directory found: the regular files, and the wanted names skipped as not regular files."""

    files: list[Path]
    skipped: list[Path]


def find_files(directory: Path, wanted: Callable[[str], bool]) -> FoundFiles:
    """The regular files under ``directory`` whose name is ``wanted``, sorted by path, and those skipped.

    A symlink to a regular file counts; a symlink to anything else (a FIFO, a device, nothing) is skipped, and symlinks
    to directories are not followed, so the search stays inside ``directory`` and cannot loop.

    Raises:
        LogReadError: if ``directory`` cannot be listed, or holds more than ``MAX_WALK_ENTRIES`` entries.
    """
    found: list[Path] = []
    skipped: list[Path] = []
    pending = [directory]
    seen = 0
    while pending:
        current = pending.pop()
        for entry in _list_directory(current, top=current == directory):
            seen += 1
            if seen > MAX_WALK_ENTRIES:
                raise LogReadError(
                    f"Expected a log directory, but {directory} holds more than {MAX_WALK_ENTRIES:,} files and "
                    "directories: pass the directory of the run"
                )
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif wanted(entry.name):
                (found if _is_regular(entry) else skipped).append(Path(entry.path))
    return FoundFiles(sorted(found), sorted(skipped))


def _list_directory(directory: Path, top: bool) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as error:
        if top:
            raise LogReadError(f"Cannot list the directory {directory}: {error.strerror or error}") from None
        return []  # an unreadable subdirectory holds nothing we can read, like os.walk


def _is_regular(entry: os.DirEntry[str]) -> bool:
    """Whether the entry, or the target of the symlink it is, is a regular file (a stat, never an open)."""
    try:
        return entry.is_file(follow_symlinks=True)
    except OSError:
        return False
