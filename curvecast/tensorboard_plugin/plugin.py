"""CurvecastPlugin: TensorBoard's ``curvecast`` tab, loaded through the ``tensorboard_plugins`` entry point.

Routes, under ``/data/plugin/curvecast``:

- ``/index.js``: the tab, a self-contained ES module (TensorBoard loads it in an iframe and calls its ``render()``);
- ``/runs``: ``["run", ...]``, the runs holding curvecast data;
- ``/run?run=NAME``: one run's chart data (see :func:`~curvecast.tensorboard_plugin.run_data.read_run`).

The tab is listed as active when some run holds data tagged for the ``curvecast`` plugin; TensorBoard answers that
from its data provider, so the plugin itself never scans the log directory.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from curvecast.tensorboard_plugin import run_data
from curvecast.tensorboard_plugin.summary import PLUGIN_NAME

__all__ = ["CurvecastPlugin"]

_JSON = "application/json"


class CurvecastPlugin(base_plugin.TBPlugin):
    """The ``curvecast`` tab: per run, the observed curve, the latest forecast with its band, the target, anomalies,
    early stops, the forecast of the final value over time, and the LR so far beside the planned one."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._data_provider = context.data_provider

    def get_plugin_apps(self) -> dict[str, Any]:
        return {"/index.js": self._serve_js, "/runs": self._serve_runs, "/run": self._serve_run}

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
        data = None if self._data_provider is None else run_data.read_run(self._data_provider, ctx, eid, run)
        if data is None:
            return http_util.Respond(request, f"No curvecast data in run {run!r}", "text/plain", code=404)
        return http_util.Respond(request, json.dumps(data, allow_nan=False), _JSON)


def _context(request: wrappers.Request) -> tuple[Any, str]:
    """The request's context and experiment id, as TensorBoard's data provider wants them."""
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
