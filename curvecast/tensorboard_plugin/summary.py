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
    "decode",
    "json_summary",
    "rounded",
]

PLUGIN_NAME = "curvecast"  # SummaryMetadata.plugin_data.plugin_name, the tab's name and its route prefix
SCHEMA_VERSION = 1  # in every document and in plugin_data.content, so a later reader can tell old files apart
FORECAST_TAG = "curvecast/plugin/forecast"
PLANNED_LR_TAG = "curvecast/plugin/planned_lr"
EVENTS_TAG = "curvecast/plugin/events"
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


def decode(value: Any) -> dict[str, Any] | None:
    """A document back from a string tensor's value (bytes, a numpy scalar or array); None if it is not one."""
    try:
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        document = json.loads(value)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None
