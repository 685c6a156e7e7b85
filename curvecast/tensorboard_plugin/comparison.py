"""The runs of the log directory compared: ranked by forecast final value, each with its chance to end best, and the
curves of the runs drawn on one chart.

The ranking and the chances are :mod:`curvecast.forecasting.ranking`'s, the code ``curvecast analyze DIR`` ranks
with: each run's latest forecast document carries its final value and its spread (``log_scale``, ``base``), from which
the chance that the run ends better than the best forecast of the others is the one its
:class:`~curvecast.forecasting.Forecast` gives. Unlike ``analyze``, nothing is refitted: each run is ranked by its own
latest forecast, to its own horizon (``horizons`` in the answer says when they differ), the direction of the first run
(by name) ranking them all.

What it costs does not grow with the runs' lengths: one call to TensorBoard's data provider reads every run's latest
forecast and events documents at once (a forecast document holds the last observed step and value it was made from);
one more reads the observed curves of the runs drawn, thinned to a share of :data:`DRAWN_POINTS`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from tensorboard.data import provider

from curvecast.series import logged_name
from curvecast.tensorboard_plugin import documents
from curvecast.tensorboard_plugin.run_data import RunReader, with_anomalies
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, PLUGIN_NAME, decode, parse
from curvecast.tensorboard_plugin.thinning import extremes

__all__ = ["DEFAULT_DRAWN", "DRAWN_POINTS", "compare_runs"]

log = logging.getLogger(__name__)

DEFAULT_DRAWN = 10  # runs drawn when none are chosen: the best ten by forecast
DRAWN_POINTS = 40_000  # observed points of all drawn runs together, so the answer stays under ~1.5 MB
_RUN_POINTS = (60, 600)  # the fewest and most observed points of one drawn run
_CURVE_POINTS = 60  # of each drawn run's forecast curve (the writer's have 50)
# Scalars read per drawn run, as the run's own view reads them: all that TensorBoard keeps (1000 a tag by default, more
# through --samples_per_plugin), thinned here keeping each bucket's extremes.
_SCALARS_READ = 50_000
_WARNINGS = 20


def compare_runs(data_provider: Any, ctx: Any, experiment_id: str, chosen: list[str] | None) -> dict[str, Any]:
    """The comparison of every run holding curvecast data: ``runs``, one row per run, best first, and ``drawn``, the
    curves of the ``chosen`` runs (the best :data:`DEFAULT_DRAWN` when None)."""
    warnings: list[str] = []
    # One call for the latest forecast and events documents of every run: the data provider keeps the latest.
    latest = _read(data_provider, ctx, experiment_id, "read_tensors", PLUGIN_NAME, None, [FORECAST_TAG, EVENTS_TAG], 1,
                   warnings)  # fmt: skip
    names = sorted(run for run, tags in latest.items() if FORECAST_TAG in tags or EVENTS_TAG in tags)
    forecasts: dict[str, dict[str, Any] | None] = {}
    for run in names:
        forecasts[run] = _forecast(data_provider, ctx, experiment_id, run, latest.get(run, {}), warnings)
    monitors = {run: (f or {}).get("monitor") or "loss" for run, f in forecasts.items()}
    modes = [f["mode"] for run in names if (f := forecasts[run]) and f.get("mode") in ("min", "max")]
    mode = modes[0] if modes else "min"

    # curvecast.forecasting loads scipy: paid at the first comparison, not when TensorBoard starts.
    from curvecast.forecasting.ranking import FinalDistribution, chances_to_end_best, ranking_order

    endings = [_ending(forecasts[run], FinalDistribution) for run in names]
    chances = chances_to_end_best(endings, mode)
    finals = [_final(forecasts[run]) for run in names]
    order = ranking_order(finals, mode, names)
    rows = []
    for rank, i in enumerate(order, 1):
        run, f = names[i], forecasts[names[i]] or {}
        rows.append({
            "run": run, "rank": rank if math.isfinite(finals[i]) else None, "monitor": monitors[run],
            "mode": f.get("mode"), "step": f.get("step"), "horizon": f.get("horizon"),
            "last_step": f.get("last_step"), "last": f.get("observed"),
            "final": f.get("final"), "final_lo": f.get("final_lo"), "final_hi": f.get("final_hi"),
            "interval": f.get("interval"), "target": f.get("target"), "prob_target": f.get("prob_target"),
            "chance_best": documents.number(chances[i]), "ended_at": f.get("ended_at"),
        })  # fmt: skip
    ranked = [r["run"] for r in rows]
    if chosen is None:
        drawn = ranked[:DEFAULT_DRAWN]
    else:
        wanted = set(chosen)
        drawn = [run for run in ranked if run in wanted]
    return {
        "mode": mode,
        "horizons": sorted({r["horizon"] for r in rows if r["horizon"] is not None}),
        "runs": rows,
        "drawn": _drawn(data_provider, ctx, experiment_id, drawn, forecasts, monitors, latest, warnings),
        "warnings": warnings[:_WARNINGS],
    }


def _forecast(
    data_provider: Any, ctx: Any, experiment_id: str, run: str, tags: dict[str, list[Any]], warnings: list[str]
) -> dict[str, Any] | None:
    """The run's latest forecast document, checked; an unreadable one gives way to an older one, as in the run's own
    view (read again for that run alone: a rare case)."""
    data = tags.get(FORECAST_TAG) or []
    if not data:
        return None
    try:
        document = parse(data[-1].numpy)
    except ValueError:
        reader = RunReader(data_provider, ctx, experiment_id, run)
        document = reader.latest_document(FORECAST_TAG)
        warnings.extend(f"{run}: {w}" for w in reader.warnings)
        if document is None:
            return None
    dropped: list[str] = []
    checked = documents.forecast(document, dropped)
    if dropped:
        warnings.append(f"{run}: the forecast document has unreadable fields, left out: {', '.join(dropped)}")
    return checked


def _ending(forecast: dict[str, Any] | None, distribution: Any) -> Any:
    """The run's :class:`~curvecast.forecasting.ranking.FinalDistribution`, or None when its document has no spread
    (a file written before it was recorded) or no direction."""
    if not forecast or forecast.get("mode") not in ("min", "max"):
        return None
    values = [forecast.get(name) for name in ("final", "log_scale", "base")]
    if any(v is None for v in values):
        return None
    worse = forecast.get("worse_scale")  # absent from documents written before it was recorded: both sides alike
    return distribution(values[0], values[1], forecast["mode"], values[2], math.nan if worse is None else worse)


def _final(forecast: dict[str, Any] | None) -> float:
    value = (forecast or {}).get("final")
    return math.nan if value is None else value


def _drawn(
    data_provider: Any,
    ctx: Any,
    experiment_id: str,
    runs: list[str],
    forecasts: dict[str, dict[str, Any] | None],
    monitors: dict[str, str],
    latest: dict[str, dict[str, list[Any]]],
    warnings: list[str],
) -> list[dict[str, Any]]:
    """Each drawn run's observed curve (thinned keeping its extremes, its anomalies at their own values, as in the
    run's own view) and forecast curve with its band."""
    if not runs:
        return []
    tags = sorted({logged_name(monitors[run]) for run in runs})
    read = _read(data_provider, ctx, experiment_id, "read_scalars", "scalars", runs, tags, _SCALARS_READ, warnings)
    points = min(max(DRAWN_POINTS // len(runs), _RUN_POINTS[0]), _RUN_POINTS[1])
    out = []
    for run in runs:
        observed = []
        for datum in read.get(run, {}).get(logged_name(monitors[run]), []):
            step, value = documents.integer(datum.step), documents.number(datum.value)
            if step is not None and value is not None:
                observed.append([step, value])
        observed.sort(key=lambda p: p[0])
        observed = [observed[i] for i in extremes([p[1] for p in observed], points)]
        events = (latest.get(run, {}).get(EVENTS_TAG) or [None])[-1]
        document = None if events is None else decode(events.numpy)
        if document is not None:  # an unreadable one is told in the run's own view
            observed = with_anomalies(observed, documents.events(document, []), monitors[run])
        f = forecasts[run] or {}
        curve = f.get("curve") or {"steps": [], "mean": [], "lo": None, "hi": None}
        keep = extremes(curve["mean"], _CURVE_POINTS)
        out.append({
            "run": run, "monitor": monitors[run], "observed": observed, "target": f.get("target"),
            "horizon": f.get("horizon"),
            "curve": {name: None if curve[name] is None else [curve[name][i] for i in keep]
                      for name in ("steps", "mean", "lo", "hi")},
        })  # fmt: skip
    return out


def _read(
    data_provider: Any,
    ctx: Any,
    experiment_id: str,
    method: str,
    plugin_name: str,
    runs: list[str] | None,
    tags: list[str],
    downsample: int,
    warnings: list[str],
) -> dict[str, dict[str, list[Any]]]:
    """One read of ``tags`` of all ``runs`` (None: every run) at once; {} (and a warning) where the loader fails it."""
    if runs == [] or not tags:
        return {}
    try:
        return getattr(data_provider, method)(
            ctx,
            experiment_id=experiment_id,
            plugin_name=plugin_name,
            downsample=downsample,
            run_tag_filter=provider.RunTagFilter(runs=runs, tags=tags),
        )
    except Exception as error:  # the loader's failure leaves the rest of the comparison to serve
        log.warning("curvecast tab: TensorBoard could not read %s of %d runs: %r", tags, len(runs), error)
        warnings.append(f"TensorBoard could not read {', '.join(tags)}: {type(error).__name__}")
        return {}
