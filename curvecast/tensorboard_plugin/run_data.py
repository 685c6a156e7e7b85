"""One run's data for the curvecast tab, read through TensorBoard's data provider (whichever loader serves it).

The run's latest curvecast documents (forecast, planned LR, anomalies; see :mod:`curvecast.tensorboard_plugin.
summary`) and the scalars the reporter writes beside them: the observed monitor, the LR so far, the forecast of the
final value at each forecast, the early-stopping decisions, and the messages of the ``early_stop`` alerts. Every
value is JSON-ready: finite floats, ints, strings, None.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from tensorboard.data import provider

from curvecast.series import ALERTS_TAG, FORECAST_PREFIX, LR, STOPPED_TAG, logged_name
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, PLANNED_LR_TAG, PLUGIN_NAME, decode

__all__ = ["list_runs", "read_run"]

# Scalars per series handed to the browser: TensorBoard's own loader keeps at most 1000 per tag by default.
_SCALAR_POINTS = 2000
_ALERTS_READ = 100
_ALERT_TEXT_TAG = ALERTS_TAG + "/text_summary"  # SummaryWriter.add_text's tag for ALERTS_TAG
# The markdown of an alert (curvecast.integrations.alerts.Alert.markdown): "**severity** · `kind` · step N\n\nmessage".
_ALERT = re.compile(r"^\*\*(?P<severity>\w+)\*\* · `(?P<kind>[^`]*)` · step (?P<step>\d+)\n\n(?P<message>.*)$", re.S)


def list_runs(data_provider: Any, ctx: Any, experiment_id: str) -> list[str]:
    """The runs holding curvecast documents, sorted by name."""
    runs = data_provider.list_tensors(ctx, experiment_id=experiment_id, plugin_name=PLUGIN_NAME)
    return sorted(run for run, tags in runs.items() if FORECAST_TAG in tags or EVENTS_TAG in tags)


def read_run(data_provider: Any, ctx: Any, experiment_id: str, run: str) -> dict[str, Any] | None:
    """The chart data of ``run``, or None when it holds no curvecast documents."""
    documents = _latest_documents(data_provider, ctx, experiment_id, run)
    if not documents:
        return None
    forecast = documents.get(FORECAST_TAG)
    monitor = str(forecast["monitor"]) if forecast and "monitor" in forecast else "loss"
    observed_tag, lr_tag = logged_name(monitor), logged_name(LR)
    history_tags = {name: FORECAST_PREFIX + name for name in ("final", "final_lo", "final_hi")}
    tags = [observed_tag, lr_tag, STOPPED_TAG, *history_tags.values()]
    scalars = _scalars(data_provider, ctx, experiment_id, run, tags)
    events = documents.get(EVENTS_TAG) or {}
    return {
        "run": run,
        "monitor": monitor,
        "observed": _pairs(scalars.get(observed_tag)),
        "forecast": forecast,
        "final_history": {name: _pairs(scalars.get(tag)) for name, tag in history_tags.items()},
        "lr": _pairs(scalars.get(lr_tag)),
        "planned_lr": documents.get(PLANNED_LR_TAG),
        "anomalies": list(events.get("anomalies") or []),
        "stops": _stops(data_provider, ctx, experiment_id, run, scalars.get(STOPPED_TAG)),
    }


def _latest_documents(data_provider: Any, ctx: Any, experiment_id: str, run: str) -> dict[str, dict[str, Any]]:
    """The latest document of each curvecast tag of ``run`` (each document is complete on its own)."""
    tensors = data_provider.read_tensors(
        ctx,
        experiment_id=experiment_id,
        plugin_name=PLUGIN_NAME,
        downsample=1,  # the data provider always keeps the last point
        run_tag_filter=provider.RunTagFilter(runs=[run]),
    ).get(run, {})
    documents = {}
    for tag, data in tensors.items():
        document = decode(data[-1].numpy) if data else None
        if document is not None:
            documents[tag] = document
    return documents


def _scalars(data_provider: Any, ctx: Any, experiment_id: str, run: str, tags: list[str]) -> dict[str, list[Any]]:
    return data_provider.read_scalars(
        ctx,
        experiment_id=experiment_id,
        plugin_name="scalars",
        downsample=_SCALAR_POINTS,
        run_tag_filter=provider.RunTagFilter(runs=[run], tags=tags),
    ).get(run, {})


def _pairs(data: list[Any] | None) -> list[list[float]]:
    """``[[step, value], ...]`` of the finite points, in step order."""
    points = [[int(d.step), float(d.value)] for d in data or () if math.isfinite(d.value)]
    return sorted(points, key=lambda p: p[0])


def _stops(data_provider: Any, ctx: Any, experiment_id: str, run: str, stopped: list[Any] | None) -> list[dict]:
    """Each early stop: its step, and the message of its ``early_stop`` alert when TensorBoard kept it."""
    steps = sorted({int(d.step) for d in stopped or () if d.value > 0})
    if not steps:
        return []
    messages = {}
    text = data_provider.read_tensors(
        ctx,
        experiment_id=experiment_id,
        plugin_name="text",
        downsample=_ALERTS_READ,
        run_tag_filter=provider.RunTagFilter(runs=[run], tags=[_ALERT_TEXT_TAG]),
    )
    for datum in text.get(run, {}).get(_ALERT_TEXT_TAG, []):
        match = _ALERT.match(_text(datum.numpy))
        if match and match["kind"] == "early_stop":
            messages[int(match["step"])] = html.unescape(match["message"])  # the page sets it as text, not HTML
    return [{"step": step, "message": messages.get(step, "")} for step in steps]


def _text(value: Any) -> str:
    try:
        value = value.item() if hasattr(value, "item") else value
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except (ValueError, UnicodeDecodeError):
        return ""
