"""One run's data for the curvecast tab, read through TensorBoard's data provider (whichever loader serves it).

The run's latest curvecast documents (forecast, planned LR, anomalies; see :mod:`curvecast.tensorboard_plugin.
summary`) and the scalars the reporter writes beside them: the observed monitor, the LR so far, the forecast of the
final value at each forecast, the early-stopping decisions, and the messages of the ``early_stop`` alerts.

What the event files hold is checked, not trusted (:mod:`curvecast.tensorboard_plugin.documents`): an unreadable
document gives way to the latest readable one of its tag, a bad field is left out, a read the loader fails is skipped,
and each of these is told in ``warnings``. Every value is JSON-ready (finite floats, ints, strings, None) and every
list is bounded, so one run's answer stays under ~400 KB of JSON whatever its files hold, besides its name: 1000
points of the observed curve and of the LR (48 B each at most), 3 x 500 of the final forecast's history, the forecast
curve (500 x 4 numbers) and the planned LR (500 x 2), 50 anomalies and 10 stops (strings of at most 4 B a character:
no control characters are served) and 20 warnings.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from tensorboard.data import provider

from curvecast.series import ALERTS_TAG, FORECAST_PREFIX, LR, STOPPED_TAG, logged_name
from curvecast.tensorboard_plugin import documents
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, PLANNED_LR_TAG, PLUGIN_NAME, decode, parse
from curvecast.tensorboard_plugin.thinning import extremes

__all__ = ["RunReader", "list_runs", "read_run", "unreadable_run", "with_anomalies"]

log = logging.getLogger(__name__)

# Scalars read per series: all that TensorBoard keeps by default (1000 a tag), and a sample of a longer series kept
# through --samples_per_plugin; the browser then gets the extremes of each bucket of them.
_SCALARS_READ = 50_000
_OBSERVED_POINTS = 1000  # of the observed curve and of the LR
_HISTORY_POINTS = 500  # of the final forecast's history: one point per forecast
_OLDER_DOCUMENTS = 10  # read back for a readable document when the latest of a tag is not
_STOPS = 10  # the latest ones
_STOP_MESSAGE_CHARS = 500
_ALERTS_READ = 100
_ALERT_CHARS = 4 * _STOP_MESSAGE_CHARS  # an alert's text is cut here before it is matched
_WARNINGS = 20
_WARNING_CHARS = 300
_ALERT_TEXT_TAG = ALERTS_TAG + "/text_summary"  # SummaryWriter.add_text's tag for ALERTS_TAG
# The markdown of an alert (curvecast.integrations.alerts.Alert.markdown): "**severity** · `kind` · step N\n\nmessage".
_ALERT = re.compile(r"^\*\*(?P<severity>\w+)\*\* · `(?P<kind>[^`]*)` · step (?P<step>\d+)\n\n(?P<message>.*)$", re.S)
_DOCUMENTS = {FORECAST_TAG: "forecast", PLANNED_LR_TAG: "planned LR", EVENTS_TAG: "events"}


def list_runs(data_provider: Any, ctx: Any, experiment_id: str) -> list[str]:
    """The runs holding curvecast documents, sorted by name (none where the loader fails to list them)."""
    try:
        runs = data_provider.list_tensors(ctx, experiment_id=experiment_id, plugin_name=PLUGIN_NAME)
    except Exception:  # a loader's failure is the log directory's, not the tab's: logged, and no run listed
        log.exception("curvecast tab: TensorBoard could not list the runs' curvecast documents")
        return []
    return sorted(run for run, tags in runs.items() if FORECAST_TAG in tags or EVENTS_TAG in tags)


def read_run(data_provider: Any, ctx: Any, experiment_id: str, run: str) -> dict[str, Any] | None:
    """The chart data of ``run``, or None when it holds no curvecast documents."""
    reader = RunReader(data_provider, ctx, experiment_id, run)
    raw = {tag: reader.latest_document(tag) for tag in _DOCUMENTS}
    if not reader.found:
        return None
    checked: dict[str, Any] = {}
    for tag, check in ((FORECAST_TAG, documents.forecast), (PLANNED_LR_TAG, documents.planned_lr),
                       (EVENTS_TAG, documents.events)):  # fmt: skip
        if raw[tag] is not None:
            dropped: list[str] = []
            checked[tag] = check(raw[tag], dropped)
            if dropped:
                reader.warn(f"The {_DOCUMENTS[tag]} document has unreadable fields, left out: {', '.join(dropped)}")
    forecast = checked.get(FORECAST_TAG)
    monitor = (forecast or {}).get("monitor") or "loss"
    history_tags = {name: FORECAST_PREFIX + name for name in ("final", "final_lo", "final_hi")}
    anomalies = checked.get(EVENTS_TAG) or []
    observed = _thinned(reader.scalars(logged_name(monitor)), _OBSERVED_POINTS)
    return {
        "run": run,
        "monitor": monitor,
        "observed": with_anomalies(observed, anomalies, monitor),
        "forecast": forecast,
        "final_history": _history({name: reader.scalars(tag) for name, tag in history_tags.items()}),
        "lr": _thinned(reader.scalars(logged_name(LR)), _OBSERVED_POINTS),
        "planned_lr": checked.get(PLANNED_LR_TAG),
        "anomalies": anomalies,
        "stops": reader.stops(),
        "warnings": reader.warnings,
    }


def with_anomalies(observed: list[list[float]], anomalies: list[dict[str, Any]], monitor: str) -> list[list[float]]:
    """``observed`` with the monitor's anomalies at their own values, at the steps it lacks: TensorBoard keeps a
    sample of a long series (1000 points a tag by default) that may step over a one-step spike, while the events
    document holds each anomaly's value exactly. At most :data:`~curvecast.tensorboard_plugin.documents.ANOMALIES`
    points are added."""
    have = {p[0] for p in observed}
    added = {a["step"]: a["value"] for a in anomalies
             if a.get("series") == monitor and a.get("value") is not None and a["step"] not in have}  # fmt: skip
    if not added:
        return observed
    return sorted([*observed, *([step, value] for step, value in added.items())], key=lambda p: p[0])


def unreadable_run(run: str, reason: str) -> dict[str, Any]:
    """The answer for a run whose data could not be read at all: empty, with ``reason`` as its warning."""
    return {"run": run, "monitor": "loss", "observed": [], "forecast": None,
            "final_history": {"final": [], "final_lo": [], "final_hi": []}, "lr": [], "planned_lr": None,
            "anomalies": [], "stops": [], "warnings": [documents.text(reason, _WARNING_CHARS)]}  # fmt: skip


class RunReader:
    """The reads of one run, each on its own: a read the loader fails is a warning and reads as no data."""

    def __init__(self, data_provider: Any, ctx: Any, experiment_id: str, run: str) -> None:
        self._provider, self._ctx, self._experiment_id, self._run = data_provider, ctx, experiment_id, run
        self.found = False  # whether the run has some curvecast document, readable or not
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if len(self.warnings) < _WARNINGS:
            self.warnings.append(documents.text(message, _WARNING_CHARS) or "")

    def latest_document(self, tag: str) -> dict[str, Any] | None:
        """The latest document of ``tag`` that parses (each document is complete on its own)."""
        data = self._read("read_tensors", PLUGIN_NAME, tag, 1)  # the data provider always keeps the last point
        if data is None:
            self.found = True
            return None
        if not data:
            return None
        self.found = True
        latest = data[-1]
        try:
            return parse(latest.numpy)
        except ValueError as error:
            reason = str(error)
        for datum in reversed(self._read("read_tensors", PLUGIN_NAME, tag, _OLDER_DOCUMENTS) or ()):
            document = decode(datum.numpy) if datum.step < latest.step else None
            if document is not None:
                self.warn(f"The latest {_DOCUMENTS[tag]} document (step {latest.step}) is unreadable: {reason}; "
                          f"the one of step {datum.step} is shown")  # fmt: skip
                return document
        self.warn(f"The latest {_DOCUMENTS[tag]} document (step {latest.step}) is unreadable: {reason}")
        return None

    def scalars(self, tag: str) -> list[Any]:
        return self._read("read_scalars", "scalars", tag, _SCALARS_READ) or []

    def stops(self) -> list[dict[str, Any]]:
        """The latest early stops: their step, and the message of their ``early_stop`` alert where TensorBoard kept
        it."""
        stopped = self.scalars(STOPPED_TAG)
        steps = sorted({documents.integer(d.step) for d in stopped if (documents.number(d.value) or 0) > 0} - {None})
        steps = steps[-_STOPS:]
        if not steps:
            return []
        messages = {}
        for datum in self._read("read_tensors", "text", _ALERT_TEXT_TAG, _ALERTS_READ) or ():
            match = _ALERT.match(_text(datum.numpy)[:_ALERT_CHARS])
            if match and match["kind"] == "early_stop":  # the page sets the message as text, not HTML
                messages[int(match["step"])] = documents.text(html.unescape(match["message"]), _STOP_MESSAGE_CHARS)
        return [{"step": step, "message": messages.get(step) or ""} for step in steps]

    def _read(self, method: str, plugin_name: str, tag: str, downsample: int) -> list[Any] | None:
        """The data of ``tag``: [] when the run has none, None when the loader failed to read it."""
        try:
            read = getattr(self._provider, method)(
                self._ctx,
                experiment_id=self._experiment_id,
                plugin_name=plugin_name,
                downsample=downsample,
                run_tag_filter=provider.RunTagFilter(runs=[self._run], tags=[tag]),
            )
            return list(read.get(self._run, {}).get(tag, []))
        except Exception as error:  # the loader's failure on one tag leaves the rest of the run to serve
            log.warning("curvecast tab: TensorBoard could not read %s of run %r: %r", tag, self._run, error)
            self.warn(f"TensorBoard could not read {tag}: {type(error).__name__}")
            return None


def _pairs(data: list[Any]) -> list[list[float]]:
    """``[[step, value], ...]`` of the finite points, in step order."""
    points = []
    for d in data:
        step, value = documents.integer(d.step), documents.number(d.value)
        if step is not None and value is not None:
            points.append([step, value])
    return sorted(points, key=lambda p: p[0])


def _thinned(data: list[Any], max_points: int) -> list[list[float]]:
    """The finite points of ``data`` in step order, thinned to ``max_points`` keeping each bucket's extremes."""
    points = _pairs(data)
    return [points[i] for i in extremes([p[1] for p in points], max_points)]


def _history(series: dict[str, list[Any]]) -> dict[str, list[list[float]]]:
    """The final forecast with its interval, thinned on the final value: the interval kept at the same steps."""
    final = _thinned(series["final"], _HISTORY_POINTS)
    steps = {p[0] for p in final}
    out = {"final": final}
    for name in ("final_lo", "final_hi"):
        bound = _pairs(series[name])
        out[name] = [p for p in bound if p[0] in steps] if final else _thinned(series[name], _HISTORY_POINTS)
    return out


def _text(value: Any) -> str:
    try:
        value = value.item() if hasattr(value, "item") else value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    except ValueError:
        return ""
