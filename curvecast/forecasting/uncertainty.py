"""Predictive spread of the horizon forecast, in log space.

The spread of an ensemble is not an interval (the digest's MPL-27 check: family ranges covered the truth in 37-59 % of
runs), so the scale adds up independent sources: how far the fit on the older part of the curve missed the latest
point (the held-back error, grown with the distance to the horizon in log-steps), the posterior uncertainty of the
annealing drop still to come, the spread of the ensemble members, the noise of the current level, and a floor per
unit of log-step extrapolation for what a short held-back window cannot show.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["log_scale"]

# Relative error per unit of log(horizon / last step) that every forecast carries at least (a 4x extrapolation, as
# from a 25 % prefix, gets a 1.4 % floor).
FLOOR_PER_LOG_STEP = 0.01


def log_scale(
    finals: np.ndarray,
    weights: np.ndarray,
    backtest: float,
    holdout_span: float,
    first: float,
    last: float,
    horizon: float,
    anneal_sd: float,
    noise: float,
) -> float:
    """Standard deviation of log(metric at horizon) from the sources above (all relative errors)."""
    reach = math.log(max(horizon, 1.0) / max(last, 1.0))
    spread = 0.0
    if len(finals) > 1:
        logs = np.log(finals)
        mean = float(np.dot(weights, logs))
        spread = float(np.sqrt(np.dot(weights, (logs - mean) ** 2)))
    held = 0.0
    if math.isfinite(backtest) and holdout_span > 0:
        span = math.log(max(last, 1.0) / max(last - holdout_span, 1.0, first))
        held = abs(backtest) * reach / max(span, 1e-3)
    floor = FLOOR_PER_LOG_STEP * reach
    return float(math.sqrt(spread**2 + held**2 + anneal_sd**2 + noise**2 + floor**2))
