"""The curvecast tab's data in an event file: JSON documents in string tensors tagged for the ``curvecast`` plugin.

A run writes, beside its scalars (``curvecast/<monitor>``, ``curvecast/lr``, ``curvecast/forecast/final`` ...):

- :data:`FORECAST_TAG` at a forecast: the forecast curve from the last observed step to the horizon, its band, the
  final value with its interval, the target and the chance of reaching it;
- :data:`PLANNED_LR_TAG` when the planned LR schedule is first known or changes: the LR sampled over ``0..horizon``;
- :data:`EVENTS_TAG` when anomalies arrive: the run's most recent anomalies, all of them in each document, so the
  latest document alone is enough (TensorBoard keeps a sample of a tag's older values, and always the latest).

Each is one small document per event, so what the tab costs on disk grows with the forecasts, not with the steps.
Pure Python and protobuf: importing it loads neither torch nor Lightning.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

__all__ = [
    "EVENTS_TAG",
    "FORECAST_TAG",
    "PLANNED_LR_TAG",
    "PLUGIN_NAME",
    "SCHEMA_VERSION",
    "MAX_DOCUMENT_BYTES",
    "decode",
    "json_summary",
    "parse",
    "rounded",
]

PLUGIN_NAME = "curvecast"  # SummaryMetadata.plugin_data.plugin_name, the tab's name and its route prefix
SCHEMA_VERSION = 1  # in every document and in plugin_data.content, so a later reader can tell old files apart
FORECAST_TAG = "curvecast/plugin/forecast"
PLANNED_LR_TAG = "curvecast/plugin/planned_lr"
EVENTS_TAG = "curvecast/plugin/events"
# A document read back larger than this is refused unparsed: the writer's are a few KB (a 50-point curve).
MAX_DOCUMENT_BYTES = 32 * 2**20
# Six significant digits are finer than any chart and keep a 50-point curve around 2 KB of JSON.
_DIGITS = 6


def rounded(values: Any) -> list[float | None]:
    """``values`` as JSON numbers with six significant digits; a non-finite value becomes null."""
    out: list[float | None] = []
    for value in values:
        value = float(value)
        out.append(float(f"{value:.{_DIGITS}g}") if math.isfinite(value) else None)
    return out


def json_summary(tag: str, document: dict[str, Any]) -> summary_pb2.Summary:
    """A ``Summary`` holding ``document`` as a JSON string tensor, tagged for the curvecast plugin.

    Example:
        >>> summary = json_summary(FORECAST_TAG, {"step": 3})
        >>> value = summary.value[0]
        >>> value.metadata.plugin_data.plugin_name, decode(value.tensor.string_val[0])
        ('curvecast', {'step': 3, 'version': 1})
    """
    text = json.dumps({**document, "version": SCHEMA_VERSION}, separators=(",", ":"), allow_nan=False)
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=str(SCHEMA_VERSION).encode()
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=[text.encode()], tensor_shape=tensor_shape_pb2.TensorShapeProto()
    )
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)])


def parse(value: Any) -> dict[str, Any]:
    """A document back from a string tensor's value (bytes, str, a numpy scalar or size-1 array).

    Bytes that are not UTF-8 are replaced (U+FFFD), and ``NaN``/``Infinity`` tokens read as None; the fields are
    not checked (see :mod:`curvecast.tensorboard_plugin.documents`).

    Raises:
        ValueError: the value is not a JSON object, is nested too deep or is larger than :data:`MAX_DOCUMENT_BYTES`.
    """
    try:
        if hasattr(value, "item"):
            value = value.item()
    except ValueError as error:  # a tensor of several strings, or none
        raise ValueError(f"Expected one string, but got a tensor of shape {getattr(value, 'shape', '?')}") from error
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"Expected a string tensor, but got {type(value).__name__}")
    if len(value) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"Expected at most {MAX_DOCUMENT_BYTES} characters, but got {len(value)}")
    try:
        document = json.loads(value, parse_constant=_no_constant)
    except RecursionError as error:
        raise ValueError("Expected JSON nested a few levels deep, but got deeper nesting") from error
    except ValueError as error:
        raise ValueError(f"Expected JSON, but got an error: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"Expected a JSON object, but got {type(document).__name__}")
    return document


def decode(value: Any) -> dict[str, Any] | None:
    """:func:`parse`, or None where ``value`` is not a document.

    Example:
        >>> decode(b'{"final": NaN}'), decode(b"[1, 2]"), decode(b"[" * 10_000 + b"]" * 10_000)
        ({'final': None}, None, None)
    """
    try:
        return parse(value)
    except ValueError:
        return None


def _no_constant(name: str) -> None:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's JSON reader accepts and JSON has not: null."""
