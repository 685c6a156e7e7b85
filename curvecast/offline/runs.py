"""Many runs at once: ``curvecast analyze DIR`` over a directory of runs (a sweep, the demo's), ranked by forecast.

A run is a directory holding TensorBoard event files or a ``metrics.csv`` of its own; curvecast's sub-runs inside a run
(``curvecast_forecast/``, ``curvecast_summary/``) belong to it and are no runs. Every run is forecast to one common
horizon (``--horizon``, or the latest planned end or last step among the runs: a run stopped early is asked where
it would have gone), then ranked by its forecast, with the chance it ends better than the best forecast of the other
runs (:mod:`curvecast.forecasting.ranking`, which the curvecast tab's comparison of runs uses too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curvecast.forecasting.ranking import FinalDistribution, chances_to_end_best, ranking_order
from curvecast.logreaders import LogReadError
from curvecast.logreaders.base import printable
from curvecast.offline.analysis import Analysis, AnalyzeError, analyze
from curvecast.render.text import fmt

if TYPE_CHECKING:
    from curvecast.forecasting.anomalies import Anomaly

__all__ = ["RankedRun", "describe_runs", "rank_runs", "runs_to_dict"]

_NAME_CHARS = 40  # of a run's path in the table


@dataclass(frozen=True)
class RankedRun:
    """One run of a directory: its analysis (None when it could not be analysed, with the reason in ``error``) and
    the chance its final value ends better than the best forecast among the other runs."""

    path: Path
    analysis: Analysis | None
    error: str | None = None
    chance_to_beat: float = math.nan
    same_as: Path | None = None  # another log of the same run (its curve is this one's): not ranked against it


def rank_runs(
    runs: list[Path],
    tag: str | None = None,
    horizon: int | None = None,
    target: float | None = None,
    *,
    mode: str | None = None,
    bounds: tuple[float | None, float | None] | None = None,
) -> list[RankedRun]:
    """Analyse every run to a common horizon and rank them by forecast, best first (lowest, or highest for a score
    such as ``val_acc``; runs that failed last)."""
    direction = {"mode": mode, "bounds": bounds}
    first = [_analyse(run, tag, horizon, target, direction) for run in runs]
    common = horizon
    if common is None:
        ends = [a.horizon for _, a, _ in first if a is not None]  # each run's planned end, else its last step
        common = max(ends) if ends else None
    if common is not None and horizon is None:  # again, to the common horizon: a run stopped early is extrapolated
        first = [_analyse(run, tag, common, target, direction) if a is not None else (run, a, e) for run, a, e in first]
    modes = [a.mode for _, a, _ in first if a is not None]
    ranked_by = "max" if modes and modes[0] == "max" else "min"  # the first run's direction ranks them all
    same_as = _other_logs([a for _, a, _ in first])
    forecasts = [a.forecast if a is not None and same_as[i] is None else None for i, (_, a, _) in enumerate(first)]
    endings = [None if f is None else FinalDistribution.of(f) for f in forecasts]
    chances = chances_to_end_best(endings, ranked_by)
    finals = [math.nan if e is None else e.final for e in endings]
    order = ranking_order(finals, ranked_by, [str(run) for run, _, _ in first])
    others = [None if j is None else first[j][0] for j in same_as]
    return [RankedRun(first[i][0], first[i][1], first[i][2], chances[i], others[i]) for i in order]


def _other_logs(analyses: list[Analysis | None]) -> list[int | None]:
    """For each analysis, the index of an earlier one of the same curve (the same series name, steps and values, to
    float32's precision: a TensorBoard file and a CSVLogger's file of one run), else None. One run logged by two
    loggers into two directories is one run: ranked against itself, each copy would be given an even chance to beat
    the other."""
    out: list[int | None] = [None] * len(analyses)
    for j, b in enumerate(analyses):
        for i in range(j):
            a = analyses[i]
            if a is not None and b is not None and out[i] is None and _same_curve(a, b):
                out[j] = i
                break
    return out


def _same_curve(a: Analysis, b: Analysis) -> bool:
    x, y = a.curve, b.curve
    return (
        x.name == y.name
        and x.steps.shape == y.steps.shape
        and bool(np.array_equal(x.steps, y.steps))
        and bool(np.allclose(x.values, y.values, rtol=1e-6, atol=0.0, equal_nan=True))
    )


def _analyse(
    run: Path, tag: str | None, horizon: int | None, target: float | None, direction: dict[str, Any]
) -> tuple[Path, Analysis | None, str | None]:
    try:
        return run, analyze(run, tag=tag, horizon=horizon, target=target, **direction), None
    except (LogReadError, AnalyzeError) as error:
        return run, None, str(error)


def describe_runs(directory: Path, ranked: list[RankedRun]) -> str:
    """The ranking table printed by ``curvecast analyze DIR``."""
    done = [r for r in ranked if r.analysis is not None]
    horizon = done[0].analysis.horizon if done else None
    names = sorted({r.analysis.curve.name for r in done})
    target = done[0].analysis.target if done else None
    logs, runs = len(ranked), sum(r.same_as is None for r in ranked)
    count = f"{runs} runs" if runs == logs else f"{runs} runs ({logs} logs)"
    lines = [
        f"{count} under {printable(str(directory), 80)}, forecast to step {horizon} "
        f"(series: {', '.join(printable(n, 40) for n in names) or 'none'})",
        f"  {'rank':>4}  {'run':{_NAME_CHARS}s}  {'last step':>9}  {'last':>9}  {'forecast':>9}  "
        f"{'80% interval':>19}  {'P(beat best other)':>18}" + (f"  target {fmt(target)}" if target is not None else ""),
    ]
    for rank, run in enumerate(ranked, 1):
        name = printable(str(run.path.relative_to(directory)) or ".", _NAME_CHARS)
        if run.analysis is None:
            lines.append(f"  {'-':>4}  {name:{_NAME_CHARS}s}  not analysed: {printable(run.error or '', 100)}")
            continue
        if run.same_as is not None:
            other = printable(str(run.same_as.relative_to(directory)) or ".", _NAME_CHARS)
            lines.append(f"  {'-':>4}  {name:{_NAME_CHARS}s}  another log of {other} (the same curve): not ranked")
            continue
        curve, forecast = run.analysis.curve, run.analysis.forecast
        if forecast.ok:
            lo, hi = forecast.interval(0.8)
            cells = f"{fmt(forecast.final):>9}  {fmt(lo) + '..' + fmt(hi):>19}  {_chance(run.chance_to_beat):>18}"
        else:
            cells = f"no forecast ({printable(forecast.reason or '', 60)})"
        if target is not None:
            cells += f"  {_target_cell(run.analysis)}"
        lines.append(
            f"  {rank:>4}  {name:{_NAME_CHARS}s}  {int(curve.steps[-1]):>9}  {fmt(curve.values[-1]):>9}  {cells}"
        )
    from curvecast.forecasting.anomalies.auxiliary import facts

    # A run's validation loss that overfits, as its own analysis says (one line each, below the ranking it sits in).
    for run in ranked:
        warned = _overfit_warning(run)
        if warned is not None:
            name = printable(str(run.path.relative_to(directory)) or ".", _NAME_CHARS)
            lines.append(f"  {name}: `{printable(run.analysis.validation or '', 40)}` overfits (told at step "
                         f"{warned.step}): {printable(facts(warned.message), 160)}")  # fmt: skip
    return "\n".join(lines)


def _overfit_warning(run: RankedRun) -> Anomaly | None:
    """The overfitting warning of a ranked run's validation loss (None: none, or the run is not ranked)."""
    if run.analysis is None or run.same_as is not None:
        return None
    return next((a for a in run.analysis.overfitting if a.severity != "info"), None)


def runs_to_dict(directory: Path, ranked: list[RankedRun]) -> dict[str, Any]:
    """The machine-readable ranking (what ``--json`` prints for a directory of runs)."""
    rows = []
    for rank, run in enumerate(ranked, 1):
        row: dict[str, Any] = {"run": str(run.path.relative_to(directory)), "rank": rank if run.analysis else None}
        if run.analysis is None:
            row["error"] = run.error
        elif run.same_as is not None:
            row.update(rank=None, same_as=str(run.same_as.relative_to(directory)))
        else:
            forecast = run.analysis.forecast
            row.update(
                series=run.analysis.curve.name,
                last_step=int(run.analysis.curve.steps[-1]),
                last_value=_number(run.analysis.curve.values[-1]),
                horizon=run.analysis.horizon,
                forecast=_number(forecast.final) if forecast.ok else None,
                interval_80=[_number(v) for v in forecast.interval(0.8)] if forecast.ok else None,
                chance_to_beat_best_other=_number(run.chance_to_beat),
            )
            if run.analysis.target is not None:
                row.update(target_reached_at=run.analysis.reached_at(), target_chance=run.analysis.target_chance)
            warned = _overfit_warning(run)
            row["overfitting"] = None if warned is None else {"series": run.analysis.validation, "told_at": warned.step}
        rows.append(row)
    done = [r.analysis for r in ranked if r.analysis is not None]
    return {"source": str(directory), "target": done[0].target if done else None, "runs": rows}


def _target_cell(analysis: Analysis) -> str:
    """Where the run stands with the target: the step its log reached it at, else the chance it ends beyond it."""
    reached = analysis.reached_at()
    if reached is not None:
        return f"reached at step {reached}"
    chance = analysis.target_chance
    return "no forecast" if chance is None else f"P(reach by the horizon) {chance:.2f}"


def _chance(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
