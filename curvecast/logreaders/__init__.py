"""Readers for the logs of runs that already exist: TensorBoard event files, CSV and JSON-lines tables.

A layer below both ``curvecast analyze`` (:mod:`curvecast.offline`) and the live code that reads logs back (the
TensorBoard actuator): numpy only, no torch, no Lightning, nothing from ``curvecast.offline``.

>>> from curvecast.logreaders import read_log, choose_loss, choose_lr
>>> log = read_log("lightning_logs/version_0")        # doctest: +SKIP
>>> loss = choose_loss(log)                           # doctest: +SKIP
>>> loss.name, loss.steps[-1], loss.values[-1]        # doctest: +SKIP
('train_loss_step', 999, 0.41)
"""

from __future__ import annotations

import os
from pathlib import Path

from curvecast.logreaders.base import Curve, LogReadError, RunLog, make_curve, printable
from curvecast.logreaders.csv_table import read_csv
from curvecast.logreaders.events import is_event_file, is_event_name, read_event_dir
from curvecast.logreaders.files import find_files, open_log_file, regular_file_size
from curvecast.logreaders.json_records import read_jsonl
from curvecast.logreaders.select import choose_loss, choose_lr

__all__ = ["Curve", "LogReadError", "RunLog", "choose_loss", "choose_lr", "make_curve", "read_log"]

_TABLE_NAMES = ("metrics.csv",)
_TABLE_SUFFIXES = (".csv", ".jsonl")


def _is_table_name(name: str) -> bool:
    return name in _TABLE_NAMES or name.endswith(_TABLE_SUFFIXES)


def _sniff(path: Path) -> str:
    """Guess the format of a file whose name says nothing: JSON starts with a brace, TFRecord with a binary length."""
    with open_log_file(path) as handle:
        head = handle.read(64)
    text = head.lstrip()
    if text.startswith((b"{", b"[")):
        return "jsonl"
    if head and all(byte >= 9 for byte in head[:32]) and b"\x00" not in head:
        return "csv"
    return "tensorboard"


def read_log(path: str | os.PathLike[str]) -> RunLog:
    """Read every numeric series under ``path``.

    ``path`` may be a TensorBoard log directory (searched recursively) or event file, a directory holding a single
    ``metrics.csv`` (Lightning's CSVLogger), or a ``.csv``/``.tsv``/``.jsonl``/``.json`` file. Only regular files are
    read: in a directory, a symlink to anything else (a FIFO, a device) is skipped, and symlinked directories are not
    followed. A log is at most ``MAX_LOG_BYTES`` and its lines at most ``MAX_LINE_BYTES``, and a directory is searched
    through at most ``MAX_WALK_ENTRIES`` entries (constants of ``curvecast.logreaders.files``).

    Raises:
        LogReadError: if the path does not exist, is not a regular file or directory, or cannot be read as any of these.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise LogReadError(f"Expected a log directory or file, but {path} does not exist")
    if path.is_dir():
        return _read_directory(path)
    regular_file_size(path)  # before anything opens it: a FIFO would block the open
    if not os.access(path, os.R_OK):
        raise LogReadError(f"Cannot read {path}: permission denied")
    return _read_file(path, named=True)


def _read_directory(path: Path) -> RunLog:
    found, skipped = find_files(path, lambda name: is_event_name(name) or _is_table_name(name))
    event_files = [file for file in found if is_event_file(file)]
    if event_files:
        return read_event_dir(path, event_files)
    tables = [file for file in found if _is_table_name(file.name)]
    if len(tables) == 1:
        return _read_file(tables[0], named=False)
    if tables:
        listed = ", ".join(printable(str(p.relative_to(path))) for p in tables[:10])
        raise LogReadError(f"Expected one log under {path}, but found {len(tables)}: {listed}; pass one of them")
    raise LogReadError(
        f"Expected TensorBoard event files, a metrics.csv or a .jsonl log under {path}, but found none"
        + _skipped_note(skipped, path)
    )


def _skipped_note(skipped: list[Path], root: Path) -> str:
    """Why a log the user can see was not read: a symlink to nothing, a FIFO, a device."""
    if not skipped:
        return ""
    listed = ", ".join(printable(str(p.relative_to(root))) for p in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"; skipped, as not regular files: {listed}{more}"


def _read_file(path: Path, named: bool) -> RunLog:
    """Read one regular file; ``named``: the user gave its path, so an error may quote a short piece of it."""
    suffix = path.suffix.lower()
    if is_event_file(path):
        kind = "tensorboard"
    elif suffix in (".csv", ".tsv"):
        kind = "csv"
    elif suffix in (".jsonl", ".ndjson", ".json"):
        kind = "jsonl"
    else:
        kind = _sniff(path)
    if kind == "tensorboard":
        return read_event_dir(path)
    if kind == "csv":
        return read_csv(path, named=named)
    return read_jsonl(path, named=named)
