"""The forecast of a fit's weighted members, its interval sized: the sources of uncertainty (``uncertainty.py``)
times the calibrated multiplier of the curve's interval class (a planned schedule on a smooth or a noisy curve, no
schedule for a loss or a score: ``calibration.py``), never narrower than one logged point's scatter, its worse side
held to the curve's recent worst level where the planned LR does not rise again, and the reason it could not be made
where it is too noisy or too uncertain (``MAX_LOG_SCALE``)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from curvecast.forecasting.calibration import (
    ANNEAL_SD_RANGE,
    ANNEAL_SD_SLOPE,
    EARLY_FROM,
    HELD_GROWTH_NOISY,
    INTERVAL_SCALE_KNOWN,
    INTERVAL_SCALE_KNOWN_EARLY,
    INTERVAL_SCALE_KNOWN_NOISY,
    INTERVAL_SCALE_SCORE,
    INTERVAL_SCALE_UNKNOWN,
    MAX_LOG_SCALE,
    NOISE_FLOOR_NOISY,
)
from curvecast.forecasting.fit_context import FitContext
from curvecast.forecasting.fit_diagnostics import FitDiagnostics, Member
from curvecast.forecasting.flat import FlatMember
from curvecast.forecasting.forecast import Z80, Forecast
from curvecast.forecasting.references import ReferenceMember
from curvecast.forecasting.uncertainty import ensemble_spread, interval_log_scale, leverage, log_scale_parts

__all__ = ["sized_forecast"]

# The bins whose worst level bounds the worse side: the latest fifth of the window, at least this many.
_RECENT_BINS = 3


class Ensemble:
    """The weighted sum of fitted members: the forecast's point curve (a class, so a Forecast pickles)."""

    def __init__(self, members: list[tuple[float, Member]]) -> None:
        self.members = members

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return sum(w * f(t) for w, f in self.members)


def sized_forecast(
    fit: FitContext,
    members: tuple[tuple[float, Member], ...],
    backtests: np.ndarray,
    interval_scale: float = 1.0,
    alternatives: tuple[tuple[float, Member], ...] | None = None,
) -> Forecast:
    """The forecast of the weighted ``members``, its interval sized (or the reason it could not be).

    ``backtests`` are the members' held-back misses at the last bin (nan where nothing was held back);
    ``interval_scale`` is the user's multiplier of the calibrated interval (``Forecaster(interval_scale=...)``);
    ``alternatives``: the members weighed otherwise for the ensemble's spread (``hypotheses.spread_alternatives``),
    the larger of the two spreads counting.
    """
    horizon, t_obs = fit.horizon, fit.t_obs
    curve = Ensemble(list(members))
    at_h = np.array([float(horizon)])
    finals = np.array([f(at_h)[0] for _, f in members])
    w_m = np.array([w for w, _ in members])
    final = float(np.dot(w_m, finals))
    current = float(curve(np.array([t_obs]))[0])
    if not (math.isfinite(final) and final > 0):
        reason = f"the fitted curve does not stay positive (forecast {final:g})"
        return Forecast.failed(reason, horizon, int(t_obs))
    lever = leverage(fit.t_last, float(horizon), fit.origin)
    early = lever if fit.known and lever >= EARLY_FROM else 0.0  # an early forecast: its leverage counts
    parts = _scale_parts(fit, members, finals, w_m, final, backtests, early)
    if alternatives:
        alt_finals = np.array([f(at_h)[0] for _, f in alternatives])
        alt_weights = np.array([w for w, _ in alternatives])
        alt_spread = ensemble_spread(*_spread_of_references(alternatives, alt_finals, alt_weights, float(horizon)))
        parts["spread"] = max(parts["spread"], alt_spread)
    calibrated, noise = _interval_scale(fit, early, interval_scale)
    scale = interval_log_scale(parts, calibrated, noise, fit.known)
    bound = _worse_bound(fit, final, noise)
    diagnostics = FitDiagnostics(fit.data, fit.schedule, fit.slope, parts, members, calibrated, noise, lever, bound)
    if not noise <= MAX_LOG_SCALE:
        reason = f"too noisy to forecast: one logged point scatters by a log-scale of {noise:.3g}"
        return replace(Forecast.failed(reason, horizon, int(t_obs)), diagnostics=diagnostics)
    if not scale <= MAX_LOG_SCALE and all(isinstance(f, FlatMember) for _, f in members) and math.isfinite(scale):
        # The recent level of a curve no law can tell: a forecast with the widest interval one may have.
        scale = MAX_LOG_SCALE
    if not scale <= MAX_LOG_SCALE:
        reason = (
            f"too uncertain to forecast: the horizon lies too far past the data (log-scale {scale:.3g} > "
            f"{MAX_LOG_SCALE:g})"
        )
        return replace(Forecast.failed(reason, horizon, int(t_obs)), diagnostics=diagnostics)
    return Forecast(
        ok=True,
        reason=None,
        horizon=horizon,
        last_step=int(math.floor(t_obs)),
        final=final,
        log_scale=scale,
        model=_describe(members),
        current=current,
        curve=curve,
        diagnostics=diagnostics,
        worse_scale=bound if bound < scale else math.nan,
    )


def _worse_bound(fit: FitContext, final: float, noise: float) -> float:
    """The largest log-scale the worse side of ``final`` may have (inf where nothing bounds it).

    With a planned LR that does not rise again before the horizon, a run's metric ends no worse than its recent worst
    level: from 10-25 % of the speedrun, AlgoPerf and live curves with their schedules (``benchmarks/calibrate.py``),
    the interval's misses lay on the better side (the loss fell further than forecast), and a symmetric interval
    spent half its width where the run does not go (from 10 % of a small live run, 0.14 .. 14 around a loss of 1.4
    whose latest points were at 2.3). So the worse side's 80 % end is held to the worst of the latest bins, plus one
    logged point's scatter (``noise``: the value logged at the horizon carries it). On that corpus the worse end's
    median reach in log y went 2.55 -> 0.84 from 10 % of the live training curves and 4.9 -> 1.9 of their validation
    curves (1.83 -> 0.69 from 25 %), the speedrun's stayed; one of the 936 forecasts left its interval for it (a live
    validation loss overfitting from its second evaluation on: live validation curves from 25 % covered 76 -> 73 %
    out of group), every other coverage figure stayed. A rise of the LR ahead (a warmup not over, a cyclic schedule)
    can lift the curve: no bound then, nor without a schedule (the wild logs' validation losses that will overfit
    show it nowhere in their prefix). The horizon step's own LR is no LR ahead: no step trains with it, and torch's
    ``OneCycleLR`` turns up there (its cosine past its end), which left every forecast of such a run unbounded.
    """
    if not fit.known or fit.schedule.rose_between(int(fit.t_last), int(fit.horizon) - 1):
        return math.inf
    values = fit.data.values
    worst = float(np.max(values[-max(_RECENT_BINS, len(values) // 5) :]))
    if not worst > final:  # a forecast that ends above its recent worst: its own interval says how far
        return math.inf
    return math.log(worst / final) / Z80 + noise


def _interval_scale(fit: FitContext, early: float, interval_scale: float) -> tuple[float, float]:
    """The calibrated multiplier of the fit's uncertainty and the noise the logged value at the horizon carries
    (``uncertainty.interval_log_scale`` puts them together); ``early`` is an early forecast's leverage, else 0."""
    if early > 0:  # an early forecast (``calibration.EARLY_FROM``): its own multiplier, a noisy curve's least width
        least = NOISE_FLOOR_NOISY * fit.scatter if fit.noisy else fit.scatter
        return interval_scale * INTERVAL_SCALE_KNOWN_EARLY, interval_scale * least
    if fit.noisy:  # a noisy curve's interval is sized apart, at least NOISE_FLOOR_NOISY points' scatter wide
        least = NOISE_FLOOR_NOISY * fit.scatter
        return interval_scale * INTERVAL_SCALE_KNOWN_NOISY, interval_scale * least
    if fit.known:
        return interval_scale * INTERVAL_SCALE_KNOWN, interval_scale * fit.scatter
    # Without a planned schedule the multiplier is calibrated per kind of metric (a loss, a score), and it
    # multiplies only what the extrapolation does not know (the laws' spread, the held-back error): the noise of
    # the point to be logged adds as it is (the level's own noise, its mean over the latest points, is far less).
    scale = INTERVAL_SCALE_UNKNOWN if fit.mode == "min" else INTERVAL_SCALE_SCORE
    return interval_scale * scale, interval_scale * fit.scatter


def _scale_parts(
    fit: FitContext,
    members: tuple[tuple[float, Member], ...],
    finals: np.ndarray,
    weights: np.ndarray,
    final: float,
    backtests: np.ndarray,
    early: float,
) -> dict[str, float]:
    """The independent sources of the forecast's log-scale (``uncertainty.log_scale_parts``)."""
    data = fit.data
    anneal_sd = float(np.dot(weights, [f.anneal_sd for _, f in members]))
    spread_finals, spread_weights = _spread_of_references(members, finals, weights, float(fit.horizon))
    return log_scale_parts(
        finals=spread_finals,
        weights=spread_weights,
        backtest=float(np.nanmean(np.abs(backtests))) if np.isfinite(backtests).any() else math.nan,
        holdout_span=fit.t_last - fit.cut,
        first=float(data.steps[0]),
        last=fit.t_last,
        horizon=float(fit.horizon),
        anneal_sd=anneal_sd / final * float(np.clip(fit.slope / ANNEAL_SD_SLOPE, *ANNEAL_SD_RANGE)),
        schedule_known=fit.known,
        slope=fit.slope,
        noise=data.noise / math.sqrt(max(float(data.counts[-len(data.counts) // 10 - 1 :].sum()), 1.0)),
        start=fit.start,
        held_growth=HELD_GROWTH_NOISY if fit.noisy else 1.0,
        early=early,
    )


def _spread_of_references(
    members: tuple[tuple[float, Member], ...], finals: np.ndarray, weights: np.ndarray, horizon: float
) -> tuple[np.ndarray, np.ndarray]:
    """The members' finals and weights for the ensemble's spread, the reference member's split into each reference's
    final with an equal share of its weight: the member's forecast is their median, and their disagreement is an
    uncertainty of it. From a directory of 8 runs, 3 of the run's recipe, 3 of another model and 2 of a fine-tuning
    whose accuracy falls, a classifier's accuracy was forecast 0.535 (80%: 0.529 .. 0.541) at step 320 of 960, and it
    ended at 0.591; references of one recipe agree within a few percent, and their spread adds little."""
    split_f, split_w = [], []
    for (w, member), final in zip(members, finals, strict=True):
        each = member.each(np.array([horizon]))[:, 0] if isinstance(member, ReferenceMember) else np.empty(0)
        each = each[np.isfinite(each) & (each > 0)]
        if len(each) > 1:
            split_f.append(each)
            split_w.append(np.full(len(each), w / len(each)))
        else:
            split_f.append(np.array([final]))
            split_w.append(np.array([w]))
    return np.concatenate(split_f), np.concatenate(split_w)


def _describe(members: tuple[tuple[float, Member], ...]) -> str:
    """The model in a line: the member, or the weighted sum of the members."""
    if len(members) == 1:
        return members[0][1].describe()
    return " + ".join(f"{w:.2f} {f.describe()}" for w, f in members)
