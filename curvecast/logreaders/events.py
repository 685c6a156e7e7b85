"""TensorBoard event files from any writer: scalars written as ``simple_value`` or as scalar tensors.

The files are read record by record here instead of through ``EventAccumulator``: the accumulator keeps every event
object, reservoir-samples by default, and took tens of seconds on a million points, while this reader keeps only
(step, value) per scalar tag. The TFRecord framing is checked (a length that runs past the end of the file means
the file is truncated), but the CRC32C checksums are not: a pure-Python CRC over tens of megabytes costs minutes,
and a damaged record almost always fails to parse anyway.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from curvecast.logreaders.base import Curve, LogReadError, RunLog, make_curve

__all__ = ["find_event_files", "is_event_file", "read_event_dir", "read_event_file"]

_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length
_FOOTER_SIZE = 4  # masked CRC of the data

# TensorProto dtype enum -> (numpy dtype of tensor_content, repeated field holding the value otherwise).
_NUMERIC_DTYPES: dict[int, tuple[str, str]] = {
    1: ("<f4", "float_val"),  # DT_FLOAT
    2: ("<f8", "double_val"),  # DT_DOUBLE
    3: ("<i4", "int_val"),  # DT_INT32
    9: ("<i8", "int64_val"),  # DT_INT64
    19: ("<f2", "half_val"),  # DT_HALF (half_val holds the raw 16 bits as ints)
    14: ("<u2", "half_val"),  # DT_BFLOAT16 (raw 16 bits, converted below)
}


def is_event_file(path: Path) -> bool:
    """Whether ``path`` is named like a TensorBoard event file (``events.out.tfevents.*``)."""
    return "tfevents" in path.name


def find_event_files(directory: Path) -> list[Path]:
    """Event files under ``directory``, recursively, sorted by path (within a run, the name's timestamp orders them)."""
    found: list[Path] = []
    for root, _dirs, files in os.walk(directory):
        found.extend(Path(root) / name for name in files if "tfevents" in name)
    return sorted(found)


def _records(data: bytes, path: Path) -> list[bytes]:
    """Split a TFRecord file into its records, failing clearly on a truncated or foreign file."""
    records: list[bytes] = []
    offset, end = 0, len(data)
    unpack = _HEADER.unpack_from
    while offset < end:
        if end - offset < _HEADER.size:
            raise LogReadError(
                f"Expected a complete record header at byte {offset} of {path}, but the file ends there "
                f"({len(records)} records read): the event file is truncated"
            )
        length, _crc = unpack(data, offset)
        start = offset + _HEADER.size
        stop = start + length
        if stop + _FOOTER_SIZE > end:
            raise LogReadError(
                f"Expected a record of {length} bytes at byte {offset} of {path}, but the file has only "
                f"{end - start} bytes left ({len(records)} records read): the event file is truncated or not "
                "an event file"
            )
        records.append(data[start:stop])
        offset = stop + _FOOTER_SIZE
    return records


def _tensor_scalar(tensor) -> float | None:
    """The value of a one-element numeric ``TensorProto``, or None for anything else (text, histograms, images)."""
    spec = _NUMERIC_DTYPES.get(tensor.dtype)
    if spec is None or any(dim.size != 1 for dim in tensor.tensor_shape.dim):
        return None
    content_dtype, field_name = spec
    if tensor.tensor_content:
        array = np.frombuffer(tensor.tensor_content, dtype=content_dtype)
    else:
        array = np.asarray(getattr(tensor, field_name))
        if tensor.dtype == 19:
            array = array.astype(np.uint16).view(np.float16)
    if array.size != 1:
        return None
    if tensor.dtype == 14:  # bfloat16: the top half of a float32
        return float((array.astype(np.uint32) << 16).view(np.float32)[0])
    return float(array.reshape(-1)[0])


def read_event_file(path: Path, points: dict[str, tuple[list[int], list[float]]] | None = None):
    """Append the scalar points of one event file to ``points`` (tag -> (steps, values)) and return it.

    Raises:
        LogReadError: if the file cannot be read, is truncated, or holds something other than events.
    """
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    points = {} if points is None else points
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LogReadError(f"Cannot read the event file {path}: {error.strerror or error}") from None
    plugins: dict[str, str] = {}  # tag -> plugin; writers put the metadata on a tag's first event only
    parse = Event.FromString
    for index, record in enumerate(_records(data, path)):
        try:
            event = parse(record)
        except DecodeError:
            raise LogReadError(
                f"Expected record {index} of {path} to be a TensorBoard event, but it does not parse: "
                "the file is damaged or not an event file"
            ) from None
        if not event.HasField("summary"):
            continue
        step = event.step
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = value.simple_value
            elif kind == "tensor":
                tag = value.tag
                if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                    plugins[tag] = value.metadata.plugin_data.plugin_name
                if plugins.get(tag, "scalars") != "scalars":
                    continue
                number = _tensor_scalar(value.tensor)
            else:
                continue
            if number is None:
                continue
            series = points.get(value.tag)
            if series is None:
                series = points[value.tag] = ([], [])
            series[0].append(step)
            series[1].append(number)
    return points


def _run_name(run_dir: Path, root: Path) -> str:
    relative = run_dir.relative_to(root).as_posix()
    return "" if relative == "." else relative


def read_event_dir(path: Path) -> RunLog:
    """Read an event file, or every event file under a directory (each subdirectory holding files is a run).

    Tags of the top-level run keep their names; tags of other runs are named ``<run>/<tag>``, the run being the
    directory relative to ``path``, e.g. ``version_1/train_loss``.

    Raises:
        LogReadError: if there is no event file, a file is unreadable or truncated, or no scalar was logged.
    """
    if path.is_file():
        files, root = [path], path.parent
    else:
        files, root = find_event_files(path), path
        if not files:
            raise LogReadError(f"Expected TensorBoard event files (events.out.tfevents.*) under {path}, but found none")
    by_run: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for file in files:
        read_event_file(file, by_run.setdefault(_run_name(file.parent, root), {}))
    curves: dict[str, Curve] = {}
    for run, tags in sorted(by_run.items(), key=lambda item: (item[0].count("/") + bool(item[0]), item[0])):
        for tag, (steps, values) in tags.items():
            name = f"{run}/{tag}" if run else tag
            curves.setdefault(name, make_curve(name, steps, values, run=run))
    if not curves:
        raise LogReadError(f"Expected scalar values in {path}, but its {len(files)} event file(s) hold none")
    return RunLog(source=path, kind="tensorboard", curves=curves, files=tuple(files))
