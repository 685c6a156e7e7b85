"""Predictive spread of the horizon forecast, in log space.

The spread of an ensemble is not an interval (the digest's MPL-27 check: family ranges covered the truth in 37-59 % of
runs), so the scale adds up independent sources: how far the fit on the older part of the curve missed the latest
point (the held-back error, grown with the distance to the horizon in log-steps; a prior in its place where the
prefix is too short to hold anything back), the posterior uncertainty of the annealing drop still to come, the spread
of the ensemble members, the noise of the current level, and a floor that grows with the log-step extrapolation for
what a short held-back window cannot show (much wider when the LR schedule is unknown).
"""

from __future__ import annotations

import math

import numpy as np

from curvecast.forecasting.calibration import (
    EARLY_KNOWN,
    EARLY_POWER,
    FLOOR_KNOWN_SCHEDULE,
    FLOOR_SLOPE_UNKNOWN,
    FLOOR_UNKNOWN_SCHEDULE,
    HELD_PRIOR_UNKNOWN,
    MIN_SPAN,
)

__all__ = ["ensemble_spread", "interval_log_scale", "leverage", "log_scale", "log_scale_parts"]


def log_scale_parts(
    finals: np.ndarray,
    weights: np.ndarray,
    backtest: float,
    holdout_span: float,
    first: float,
    last: float,
    horizon: float,
    anneal_sd: float,
    noise: float,
    schedule_known: bool,
    slope: float = 0.0,
    start: float = 0.0,
    held_growth: float = 1.0,
    early: float = 0.0,
) -> dict[str, float]:
    """The independent sources of the log-scale, by name (all relative errors); ``log_scale`` adds them up.

    ``start`` is the first positive logged step (before the window skips the early transient): without a schedule, a
    prefix too short to hold anything back gets ``held_prior`` in place of the held-back error it cannot measure,
    ``HELD_PRIOR_UNKNOWN`` times the reach over the logged span in log-steps (0 wherever ``held`` is measured).
    ``held_growth``: the held-back error grows to the horizon as (reach / held-back span)^held_growth (linearly by
    default; a noisy curve's miss, mostly scatter, is grown less: ``calibration.HELD_GROWTH_NOISY``).
    ``early``: the leverage of an early forecast with a planned schedule (``leverage``; 0 for any other), which counts
    as ``EARLY_KNOWN * reach * early^EARLY_POWER``: a law extrapolated far past the span it was seen over may miss a
    plateau's end or a late fall that no held-back tail shows.
    """
    reach = math.log(max(horizon, 1.0) / max(last, 1.0))
    spread = ensemble_spread(finals, weights)
    held = 0.0
    if math.isfinite(backtest) and holdout_span > 0:
        span = math.log(max(last, 1.0) / max(last - holdout_span, 1.0, first))
        held = abs(backtest) * abs(reach / max(span, 1e-3)) ** held_growth
    held_prior = 0.0
    if not schedule_known and not math.isfinite(backtest):
        # Nothing held back (too few points): the error the held-back tail would have shown is a prior, grown as the
        # measured one is, with the distance to the horizon over the span the prefix covers. From 5-6 epochs a
        # validation loss that will turn up as it overfits, or fall past a plateau, shows neither (the wild logs'
        # validation losses from 10 % were covered 54 % of the time leaving one repository out without it).
        logged = math.log(max(last, 1.0) / max(start, 1.0))
        held_prior = HELD_PRIOR_UNKNOWN * reach / max(logged, MIN_SPAN)
    lever = EARLY_KNOWN * reach * early**EARLY_POWER if early > 0 else 0.0
    if schedule_known:
        floor = FLOOR_KNOWN_SCHEDULE * reach**2.5
    else:
        # A curve still falling may fall far more than its laws say once an unseen LR decay comes (or far less once
        # it stalls): the floor grows with the log-drop the current log-log slope would bring over the reach.
        floor = FLOOR_UNKNOWN_SCHEDULE * reach**0.6 + FLOOR_SLOPE_UNKNOWN * slope * reach
    return {
        "spread": spread,
        "held": held,
        "held_prior": held_prior,
        "anneal": anneal_sd,
        "noise": noise,
        "floor": floor,
        "early": lever,
    }


def ensemble_spread(finals: np.ndarray, weights: np.ndarray) -> float:
    """The weighted standard deviation of the members' log finals (0 for one member)."""
    if len(finals) < 2:
        return 0.0
    logs = np.log(finals)
    mean = float(np.dot(weights, logs))
    return float(np.sqrt(np.dot(weights, (logs - mean) ** 2)))


def leverage(last: float, horizon: float, start: float) -> float:
    """How far the forecast reaches past the span it was seen over: the reach log(horizon / last step) over the
    logged span log(last step / first positive step), at least ``MIN_SPAN`` (a fit's leverage)."""
    reach = math.log(max(horizon, 1.0) / max(last, 1.0))
    return reach / max(math.log(max(last, 1.0) / max(start, 1.0)), MIN_SPAN)


def log_scale(parts: dict[str, float]) -> float:
    """Standard deviation of log(metric at horizon): the sources in ``parts`` are independent, so they add in
    quadrature."""
    return float(math.sqrt(sum(v * v for v in parts.values())))


def interval_log_scale(parts: dict[str, float], calibrated: float, noise: float, schedule_known: bool) -> float:
    """The forecast's log-scale: ``calibrated`` times the sources in ``parts``, never under ``noise`` (the scatter of
    one logged point of the series, which the value logged at the horizon carries).

    With the planned schedule the calibrated scale multiplies every source and ``noise`` is a floor. Without it the
    scale multiplies what the extrapolation does not know (the laws' spread, the held-back error, the floor) and
    ``noise`` adds in quadrature (the level's noise, ``parts["noise"]``, is left to the point's).
    """
    if schedule_known:
        return max(calibrated * log_scale(parts), noise)
    model = log_scale({k: v for k, v in parts.items() if k != "noise"})
    return float(math.hypot(calibrated * model, noise))
