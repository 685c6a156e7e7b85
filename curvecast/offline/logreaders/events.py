"""TensorBoard event files from any writer: scalars written as ``simple_value`` or as scalar tensors.

The files are read here instead of through ``EventAccumulator``, which keeps an object per event, reservoir-samples by
default, and parses each record as a protobuf message; this reader decodes the common simple-scalar record with numpy
(``fastevents``) and parses only the others. The TFRecord framing is checked (a length that runs past the end of the
file means the file is truncated), but the CRC32C checksums are not: a pure-Python CRC over tens of megabytes costs
minutes, and a damaged record almost always fails to parse anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from curvecast.offline.logreaders.base import Curve, LogReadError, RunLog, make_curve
from curvecast.offline.logreaders.fastevents import decode_simple_scalars, split_records

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


def is_event_file(path: Path) -> bool:
    """Whether ``path`` is named like a TensorBoard event file (``events.out.tfevents.*``)."""
    return "tfevents" in path.name


def find_event_files(directory: Path) -> list[Path]:
    """Event files under ``directory``, recursively, sorted by path (within a run, the name's timestamp orders them)."""
    found: list[Path] = []
    for root, _dirs, files in os.walk(directory):
        found.extend(Path(root) / name for name in files if "tfevents" in name)
    return sorted(found)


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


def read_event_file(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scalar points of one event file: tag -> (steps, values), in write order.

    Raises:
        LogReadError: if the file cannot be read, is truncated, or holds something other than events.
    """
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    try:
        data = path.read_bytes()
    except OSError as error:
        raise LogReadError(f"Cannot read the event file {path}: {error.strerror or error}") from None
    starts, lengths = split_records(data, path)
    matched, tag_ids, tags, fast_steps, fast_values = decode_simple_scalars(data, starts, lengths)
    # (record index, step, value) per tag; the slow path fills lists, the fast path arrays.
    slow: dict[str, tuple[list[int], list[int], list[float]]] = {}
    plugins: dict[str, str] = {}  # tag -> plugin; writers put the metadata on a tag's first event only
    for index in np.flatnonzero(~matched).tolist():
        start = int(starts[index])
        try:
            event = Event.FromString(data[start : start + int(lengths[index])])
        except DecodeError:
            raise LogReadError(
                f"Expected record {index} of {path} to be a TensorBoard event, but it does not parse: "
                "the file is damaged or not an event file"
            ) from None
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = value.simple_value
            elif kind == "tensor":
                if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                    plugins[value.tag] = value.metadata.plugin_data.plugin_name
                if plugins.get(value.tag, "scalars") != "scalars":
                    continue
                number = _tensor_scalar(value.tensor)
            else:
                continue
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
