"""Where a logged run was meant to end, from its own records: the default horizon of ``curvecast analyze``.

Three records say it, read in this order:

- curvecast's forecast documents (the ``curvecast`` tab's, in the run's event files): the horizon the live run
  forecast to;
- ``max_steps`` in the ``hparams.yaml`` (Lightning's loggers) or ``config.yaml`` (LightningCLI) beside the log;
- ``max_epochs`` there, times the steps of an epoch read from the log's ``epoch`` series.

Each is a number of optimizer steps; Lightning logs steps from 0, so the last step of the plan is one less. A record
that ends before the log does is not this log's plan (a ``max_steps`` of some other part of the recipe) and is passed
over. Nothing here imports torch or Lightning, and YAML is matched line by line, not parsed: no parser is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curvecast.logreaders.base import Curve, LogReadError, RunLog
from curvecast.logreaders.events import is_event_file
from curvecast.logreaders.fastevents import record_size, split_records
from curvecast.logreaders.files import open_log_file, read_chunk
from curvecast.series import FORECAST_PREFIX

__all__ = ["PlannedEnd", "planned_end"]

_CONFIG_FILES = ("hparams.yaml", "config.yaml")
_MAX_CONFIG_BYTES = 1 << 20  # a hyperparameter file is a few KB; a larger one is not read
_KEY = re.compile(r"^(?P<indent>[ \t]*)(?P<key>max_steps|max_epochs)[ \t]*:[ \t]*(?P<value>-?\d+)[ \t]*(?:#.*)?$", re.M)
_BLOCK_BYTES = 1 << 20  # of an event file searched at a time for curvecast's documents


@dataclass(frozen=True)
class PlannedEnd:
    """The last step a run was to log, and where that was read (``source``, in words)."""

    step: int
    source: str


def planned_end(log: RunLog, curve: Curve) -> PlannedEnd | None:
    """The planned last step of the run ``curve`` belongs to, at or after its last logged step, or None when the log
    records none."""
    last = int(curve.steps[-1]) if len(curve) else 0
    for end in _recorded_ends(log, curve):
        if end.step >= last:
            return end
    return None


def _recorded_ends(log: RunLog, curve: Curve) -> Iterable[PlannedEnd]:
    files = [file for file in log.files if _run_dir(log, file) == curve.run]
    own = any(c.run == curve.run and _tag(c).startswith(FORECAST_PREFIX) for c in log.curves.values())
    if own:
        horizon = _curvecast_horizon([file for file in files if is_event_file(file)])
        if horizon is not None:
            yield PlannedEnd(horizon - 1, f"the horizon of curvecast's forecasts, step {horizon}")
    for directory in dict.fromkeys(file.parent for file in files):
        for name in _CONFIG_FILES:
            keys = _read_keys(directory / name)
            if keys.get("max_steps", 0) > 0:
                yield PlannedEnd(keys["max_steps"] - 1, f"max_steps: {keys['max_steps']} in {name}")
            epochs = keys.get("max_epochs", 0)
            per_epoch = _steps_per_epoch(log, curve) if epochs > 0 else None
            if per_epoch is not None:
                yield PlannedEnd(
                    round(epochs * per_epoch) - 1,
                    f"max_epochs: {epochs} in {name}, at {per_epoch:.4g} steps an epoch",
                )


def _tag(curve: Curve) -> str:
    return curve.name[len(curve.run) + 1 :] if curve.run else curve.name


def _run_dir(log: RunLog, file: Path) -> str:
    """The run a file of the log belongs to, as ``Curve.run`` names it (event files only: a table is one run)."""
    if log.kind != "tensorboard" or not log.source.is_dir():
        return ""
    relative = file.parent.relative_to(log.source).as_posix()
    return "" if relative == "." else relative


def _read_keys(path: Path) -> dict[str, int]:
    """``max_steps`` and ``max_epochs`` of a YAML file: each key's least-indented whole-number value (the Trainer's,
    at the top or under ``trainer:``); nothing when the file is missing, too large or unreadable."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
            return {}
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    found: dict[str, tuple[int, int]] = {}
    for match in _KEY.finditer(text):
        indent, key = len(match["indent"].expandtabs(2)), match["key"]
        if key not in found or indent < found[key][0]:
            found[key] = (indent, int(match["value"]))
    return {key: value for key, (_indent, value) in found.items()}


def _steps_per_epoch(log: RunLog, curve: Curve) -> float | None:
    """Steps an epoch, from the ``epoch`` series of the run: the last step logged in the latest complete epoch (one
    before the last epoch seen, whose end Lightning logs at its last step) over the epochs up to it."""
    epoch = next((c for c in log.curves.values() if c.run == curve.run and _tag(c) == "epoch"), None)
    if epoch is None:
        return None
    finite = np.isfinite(epoch.values) & (epoch.values >= 0)
    steps, epochs = epoch.steps[finite], np.round(epoch.values[finite]).astype(np.int64)
    complete = epochs < (epochs.max() if epochs.size else 0)
    if not complete.any():
        return None
    done = int(epochs[complete].max())
    return float(steps[complete][epochs[complete] == done].max() + 1) / (done + 1)


def _curvecast_horizon(files: list[Path]) -> int | None:
    """The horizon of the latest curvecast forecast document in ``files``, or None (none there, or unreadable)."""
    from curvecast.tensorboard_plugin.documents import integer

    latest = (-1, None)
    for file in files:
        try:
            for step, document in _forecast_documents(file):
                horizon = integer(document.get("horizon"))
                if step >= latest[0] and horizon is not None and horizon > 0:
                    latest = (step, horizon)
        except LogReadError:
            continue  # read_log read these files already: what fails here is at worst one record fewer
    return latest[1]


def _forecast_documents(file: Path) -> Iterable[tuple[int, dict]]:
    """``(step, document)`` of each forecast document in an event file: only the records holding the tag's bytes
    are parsed, so a long run's millions of scalars cost a search, not a parse each."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    from curvecast.tensorboard_plugin.summary import FORECAST_TAG, decode

    tag = FORECAST_TAG.encode()
    with open_log_file(file) as handle:
        tail, wanted = b"", _BLOCK_BYTES
        while chunk := read_chunk(handle, file, wanted):
            data = tail + chunk if tail else chunk
            starts, lengths, used = split_records(data)
            at = data.find(tag, 0, used)
            while at != -1:
                index = int(np.searchsorted(starts, at, side="right")) - 1
                start, end = int(starts[index]), int(starts[index] + lengths[index])
                try:
                    event = Event.FromString(data[start:end])
                except DecodeError:
                    event = None
                for value in event.summary.value if event is not None else ():
                    if value.tag == FORECAST_TAG and value.tensor.string_val:
                        document = decode(value.tensor.string_val[0])
                        if document is not None:
                            yield int(event.step), document
                at = data.find(tag, end, used)
            tail = data[used:]
            wanted = max(_BLOCK_BYTES, (record_size(tail) or 0) - len(tail))  # a long record is read whole
