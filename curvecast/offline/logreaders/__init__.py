"""Readers for the logs of runs that already exist: TensorBoard event files, CSV and JSON-lines tables.

>>> from curvecast.offline.logreaders import read_log, choose_loss, choose_lr
>>> log = read_log("lightning_logs/version_0")        # doctest: +SKIP
>>> loss = choose_loss(log)                           # doctest: +SKIP
>>> loss.name, loss.steps[-1], loss.values[-1]        # doctest: +SKIP
('train_loss_step', 999, 0.41)
"""

from __future__ import annotations

import os
from pathlib import Path

from curvecast.offline.logreaders.base import Curve, LogReadError, RunLog, make_curve
from curvecast.offline.logreaders.events import find_event_files, is_event_file, read_event_dir
from curvecast.offline.logreaders.select import choose_loss, choose_lr
from curvecast.offline.logreaders.tables import read_csv, read_jsonl

__all__ = ["Curve", "LogReadError", "RunLog", "choose_loss", "choose_lr", "make_curve", "read_log"]

_TABLE_NAMES = ("metrics.csv",)


def _sniff(path: Path) -> str:
    """Guess the format of a file whose name says nothing: JSON starts with a brace, TFRecord with a binary length."""
    with path.open("rb") as handle:
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
    ``metrics.csv`` (Lightning's CSVLogger), or a ``.csv``/``.tsv``/``.jsonl``/``.json`` file.

    Raises:
        LogReadError: if the path does not exist or cannot be read as any of these.
    """
    path = Path(path)
    if not path.exists():
        raise LogReadError(f"Expected a log directory or file, but {path} does not exist")
    if path.is_dir():
        if find_event_files(path):
            return read_event_dir(path)
        tables = sorted(p for p in path.rglob("*") if p.name in _TABLE_NAMES or p.suffix in (".csv", ".jsonl"))
        if len(tables) == 1:
            return read_log(tables[0])
        if tables:
            listed = ", ".join(str(p.relative_to(path)) for p in tables[:10])
            raise LogReadError(f"Expected one log under {path}, but found {len(tables)}: {listed}; pass one of them")
        raise LogReadError(
            f"Expected TensorBoard event files, a metrics.csv or a .jsonl log under {path}, but found none"
        )
    if not os.access(path, os.R_OK):
        raise LogReadError(f"Cannot read {path}: permission denied")
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
        return read_csv(path)
    return read_jsonl(path)
