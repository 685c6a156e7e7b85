"""CurvecastPlugin: TensorBoard's ``curvecast`` tab, loaded through the ``tensorboard_plugins`` entry point.

Routes, under ``/data/plugin/curvecast``:

- ``/index.js``: the tab, a self-contained ES module (TensorBoard loads it in an iframe and calls its ``render()``);
- ``/runs``: ``["run", ...]``, the runs holding curvecast data;
- ``/run?run=NAME``: one run's chart data (see :func:`~curvecast.tensorboard_plugin.run_data.read_run`), with the
  ``warnings`` of what its event files held that could not be read; an unreadable file is never an error of the route;
- ``/compare`` (``?run=A&run=B...`` to choose the runs drawn): every run ranked by forecast with its chance to end
  best, and the curves of the chosen runs (see :func:`~curvecast.tensorboard_plugin.comparison.compare_runs`).

The tab is listed as active when some run holds data tagged for the ``curvecast`` plugin; TensorBoard answers that
from its data provider, so the plugin itself never scans the log directory.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from curvecast.tensorboard_plugin import comparison, run_data
from curvecast.tensorboard_plugin.summary import PLUGIN_NAME

__all__ = ["CurvecastPlugin"]

log = logging.getLogger(__name__)

_JSON = "application/json"
_JSON_UTF8 = "application/json; charset=utf-8"


class CurvecastPlugin(base_plugin.TBPlugin):
    """The ``curvecast`` tab: the runs compared (ranked by forecast, their curves on one chart), and per run the
    observed curve, the latest forecast with its band, the target, anomalies, early stops, the forecast of the final
    value over time, and the LR so far beside the planned one."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._data_provider = context.data_provider

    def get_plugin_apps(self) -> dict[str, Any]:
        return {"/index.js": self._serve_js, "/runs": self._serve_runs, "/run": self._serve_run,
                "/compare": self._serve_compare}  # fmt: skip

    def is_active(self) -> bool:
        return False  # active only through data_plugin_names: TensorBoard finds the plugin name in the data

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Curvecast")

    @wrappers.Request.application
    def _serve_js(self, request: wrappers.Request) -> wrappers.Response:
        script = resources.files("curvecast.tensorboard_plugin").joinpath("static/index.js").read_text("utf-8")
        return http_util.Respond(request, script, "application/javascript")

    @wrappers.Request.application
    def _serve_runs(self, request: wrappers.Request) -> wrappers.Response:
        if self._data_provider is None:
            return http_util.Respond(request, "[]", _JSON)
        ctx, eid = _context(request)
        return http_util.Respond(request, json.dumps(run_data.list_runs(self._data_provider, ctx, eid)), _JSON)

    @wrappers.Request.application
    def _serve_run(self, request: wrappers.Request) -> wrappers.Response:
        run = request.args.get("run")
        if not run:
            return http_util.Respond(request, "Expected a `run` query argument, but got none", "text/plain", code=400)
        ctx, eid = _context(request)
        try:
            data = None if self._data_provider is None else run_data.read_run(self._data_provider, ctx, eid, run)
            if data is None:
                return http_util.Respond(request, f"No curvecast data in run {run!r}", "text/plain", code=404)
            body = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except Exception as error:  # whatever a run's files hold, the tab still answers: the run empty, and why
            log.exception("curvecast tab: could not read run %r", run)
            body = json.dumps(run_data.unreadable_run(run, f"The run could not be read: {type(error).__name__}"))
        # UTF-8, not \u escapes: a character costs at most 4 bytes, not 12. The strings are checked: "replace" is a
        # last guard, for a lone surrogate that slipped through.
        return http_util.Respond(request, body.encode("utf-8", "replace"), _JSON_UTF8)

    @wrappers.Request.application
    def _serve_compare(self, request: wrappers.Request) -> wrappers.Response:
        chosen = request.args.getlist("run") if "run" in request.args else None
        ctx, eid = _context(request)
        try:
            data = (
                {"mode": "min", "horizons": [], "runs": [], "drawn": [], "warnings": []}
                if self._data_provider is None
                else comparison.compare_runs(self._data_provider, ctx, eid, chosen)
            )
        except Exception as error:  # whatever the runs' files hold, the tab still answers: nothing, and why
            log.exception("curvecast tab: could not compare the runs")
            data = {"mode": "min", "horizons": [], "runs": [], "drawn": [],
                    "warnings": [f"The runs could not be compared: {type(error).__name__}"]}  # fmt: skip
        body = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        return http_util.Respond(request, body.encode("utf-8", "replace"), _JSON_UTF8)


def _context(request: wrappers.Request) -> tuple[Any, str]:
    """The request's context and experiment id, as TensorBoard's data provider wants them."""
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
