"""TensorBoard event files from any writer: scalars written as ``simple_value`` or as scalar tensors.

The files are read here instead of through ``EventAccumulator``, which keeps an object per event, reservoir-samples by
default, and parses each record as a protobuf message; this reader decodes the common simple-scalar record with numpy
(``fastevents``) and parses only the others. The TFRecord framing is checked (a length that runs past the end of the
file means the file is truncated), but the CRC32C checksums are not: a pure-Python CRC over tens of megabytes costs
minutes, and a damaged record almost always fails to parse anyway.

A file is read a block of records at a time, so memory follows the points kept rather than the file, which may hold
gigabytes of images and histograms besides the scalars.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from curvecast.logreaders.base import Curve, LogReadError, RunLog, make_curve
from curvecast.logreaders.fastevents import (
    FOOTER_SIZE,
    HEADER_SIZE,
    decode_simple_scalars,
    record_size,
    split_records,
)
from curvecast.logreaders.files import (
    check_log_size,
    find_files,
    open_log_file,
    read_chunk,
    regular_file_size,
)

__all__ = ["find_event_files", "is_event_file", "read_event_dir", "read_event_file"]

# TensorProto dtype enum -> (numpy dtype of tensor_content, repeated field holding the value otherwise).
_NUMERIC_DTYPES: dict[int, tuple[str, str]] = {
    1: ("<f4", "float_val"),  # DT_FLOAT
    2: ("<f8", "double_val"),  # DT_DOUBLE
    3: ("<i4", "int_val"),  # DT_INT32
    9: ("<i8", "int64_val"),  # DT_INT64
    19: ("<f2", "half_val"),  # DT_HALF (half_val holds the raw 16 bits as ints)
    14: ("<u2", "half_val"),  # DT_BFLOAT16 (raw 16 bits, converted below)
}
# Bytes of records decoded at a time: the vectorised decoder holds about ten times its block in temporary arrays, so
# 1 MiB keeps that near 10 MB; larger blocks read no faster.
_BLOCK_BYTES = 1 << 20


def is_event_file(path: Path) -> bool:
    """Whether ``path`` is named like a TensorBoard event file (``events.out.tfevents.*``)."""
    return is_event_name(path.name)


def is_event_name(name: str) -> bool:
    """Whether a file name is that of a TensorBoard event file."""
    return "tfevents" in name


def find_event_files(directory: Path) -> list[Path]:
    """Event files under ``directory``, recursively, sorted by path (within a run, the name's timestamp orders them).

    Only regular files count (a symlink to one too); symlinked directories are not followed.
    """
    return find_files(directory, is_event_name).files


def _tensor_scalar(tensor) -> float | None:
    """The value of a one-element numeric ``TensorProto``, or None for anything else (text, histograms, images)."""
    spec = _NUMERIC_DTYPES.get(tensor.dtype)
    if spec is None or any(dim.size != 1 for dim in tensor.tensor_shape.dim):
        return None
    content_dtype, field_name = spec
    if tensor.tensor_content:
        if len(tensor.tensor_content) != np.dtype(content_dtype).itemsize:
            return None  # not the bytes of one number: a damaged record, or a tensor of another shape
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


def read_event_file(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scalar points of one event file: tag -> (steps, values), in write order.

    Raises:
        LogReadError: if the file is not a readable regular file, is truncated, or holds something other than events.
    """
    parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    plugins: dict[str, str] = {}  # tag -> plugin; writers put the metadata on a tag's first event only
    with open_log_file(path) as handle:
        for data, starts, lengths, first_record in _record_blocks(handle, path):
            for tag, (steps, values) in _block_points(data, starts, lengths, first_record, plugins, path).items():
                tag_parts = parts.setdefault(tag, ([], []))
                tag_parts[0].append(steps)
                tag_parts[1].append(values)
    return {tag: (np.concatenate(steps), np.concatenate(values)) for tag, (steps, values) in parts.items()}


def _record_blocks(handle: BinaryIO, path: Path) -> Iterator[tuple[bytes, np.ndarray, np.ndarray, int]]:
    """Blocks of whole records: ``(data, starts, lengths, index of the block's first record in the file)``.

    Raises:
        LogReadError: if the file ends inside a record, or a record's length runs past the end of the file.
    """
    tail, tail_offset, records, read = b"", 0, 0, 0
    wanted = _BLOCK_BYTES
    while chunk := read_chunk(handle, path, wanted):
        read += len(chunk)
        check_log_size(read, path)  # the file may grow while it is read
        data = tail + chunk if tail else chunk
        starts, lengths, used = split_records(data)
        if len(starts):
            yield data, starts, lengths, records
        records += len(starts)
        tail, tail_offset = data[used:], tail_offset + used
        size = record_size(tail)
        if size is not None and tail_offset + size > os.fstat(handle.fileno()).st_size:
            break  # a length past the end of the file: reading on cannot complete it
        wanted = max(_BLOCK_BYTES, (size or 0) - len(tail))  # a long record (an image) is read whole, not re-copied
    if tail:
        raise _truncation_error(tail, tail_offset, records, handle, path)


def _truncation_error(tail: bytes, offset: int, records: int, handle: BinaryIO, path: Path) -> LogReadError:
    size = record_size(tail)
    if size is None:
        return LogReadError(
            f"Expected a complete record header at byte {offset} of {path}, but the file ends there "
            f"({records} records read): the event file is truncated"
        )
    left = os.fstat(handle.fileno()).st_size - offset - HEADER_SIZE
    length = size - HEADER_SIZE - FOOTER_SIZE
    return LogReadError(
        f"Expected a record of {length} bytes at byte {offset} of {path}, but the file has only {left} bytes left "
        f"({records} records read): the event file is truncated or not an event file"
    )


def _block_points(
    data: bytes, starts: np.ndarray, lengths: np.ndarray, first_record: int, plugins: dict[str, str], path: Path
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scalar points of a block of whole records: tag -> (steps, values), in write order."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    matched, tag_ids, tags, fast_steps, fast_values = decode_simple_scalars(data, starts, lengths)
    # (record index, step, value) per tag; the slow path fills lists, the fast path arrays.
    slow: dict[str, tuple[list[int], list[int], list[float]]] = {}
    for index in np.flatnonzero(~matched).tolist():
        start = int(starts[index])
        try:
            event = Event.FromString(data[start : start + int(lengths[index])])
        except DecodeError:
            raise LogReadError(
                f"Expected record {first_record + index} of {path} to be a TensorBoard event, but it does not parse: "
                "the file is damaged or not an event file"
            ) from None
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            number = _scalar_of(value, plugins)
            if number is not None:
                series = slow.setdefault(value.tag, ([], [], []))
                series[0].append(index)
                series[1].append(event.step)
                series[2].append(number)
    points: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    record_of_fast = np.flatnonzero(matched)
    for tag_id, tag in enumerate(tags):
        mine = tag_ids == tag_id
        points[tag] = (fast_steps[mine], fast_values[mine])
        if tag in slow:
            order_slow, steps_slow, values_slow = slow.pop(tag)
            # Interleave both paths back into write order: a repeated step keeps its last write.
            order = np.argsort(np.r_[record_of_fast[mine], order_slow], kind="stable")
            points[tag] = (np.r_[points[tag][0], steps_slow][order], np.r_[points[tag][1], values_slow][order])
    for tag, (_order, steps_slow, values_slow) in slow.items():
        points[tag] = (np.asarray(steps_slow, dtype=np.int64), np.asarray(values_slow, dtype=np.float64))
    return points


def _scalar_of(value, plugins: dict[str, str]) -> float | None:
    """The number a ``Summary.Value`` logs as a scalar, or None (text, images, histograms, other plugins)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return value.simple_value
    if kind != "tensor":
        return None
    if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
        plugins[value.tag] = value.metadata.plugin_data.plugin_name
    if plugins.get(value.tag, "scalars") != "scalars":
        return None
    return _tensor_scalar(value.tensor)


def _run_name(run_dir: Path, root: Path) -> str:
    relative = run_dir.relative_to(root).as_posix()
    return "" if relative == "." else relative


def read_event_dir(path: Path, files: list[Path] | None = None) -> RunLog:
    """Read an event file, or every event file under a directory (each subdirectory holding files is a run).

    Tags of the top-level run keep their names; tags of other runs are named ``<run>/<tag>``, the run being the
    directory relative to ``path``, e.g. ``version_1/train_loss``.

    Args:
        path: an event file or a directory.
        files: the event files under the directory ``path``, when already found.

    Raises:
        LogReadError: if there is no event file, a file is unreadable, truncated or not regular, the files together are
            larger than ``MAX_LOG_BYTES``, or no scalar was logged.
    """
    if not path.is_dir():
        files, root = [path], path.parent
    else:
        files, root = files if files is not None else find_event_files(path), path
        if not files:
            raise LogReadError(f"Expected TensorBoard event files (events.out.tfevents.*) under {path}, but found none")
    check_log_size(sum(regular_file_size(file) for file in files), path)
    by_run: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for file in files:
        run_tags = by_run.setdefault(_run_name(file.parent, root), {})
        for tag, arrays in read_event_file(file).items():
            run_tags.setdefault(tag, []).append(arrays)
    curves: dict[str, Curve] = {}
    for run, tags in sorted(by_run.items(), key=lambda item: (item[0].count("/") + bool(item[0]), item[0])):
        for tag, parts in tags.items():
            name = f"{run}/{tag}" if run else tag
            steps = np.concatenate([part[0] for part in parts])
            values = np.concatenate([part[1] for part in parts])
            curves.setdefault(name, make_curve(name, steps, values, run=run))
    if not curves:
        raise LogReadError(f"Expected scalar values in {path}, but its {len(files)} event file(s) hold none")
    return RunLog(source=path, kind="tensorboard", curves=curves, files=tuple(files))
