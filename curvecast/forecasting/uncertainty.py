"""Predictive spread of the horizon forecast, in log space.

The spread of an ensemble is not an interval (the digest's MPL-27 check: family ranges covered the truth in 37-59 % of
runs), so the scale adds up independent sources: how far the fit on the older part of the curve missed the latest
point (the held-back error, grown with the distance to the horizon in log-steps), the posterior uncertainty of the
annealing drop still to come, the spread of the ensemble members, the noise of the current level, and a floor that
grows with the log-step extrapolation for what a short held-back window cannot show (much wider when the LR
schedule is unknown).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["log_scale"]

# Floors on the log-scale as a function of the reach r = log(horizon / last step), calibrated on public curves
# (forecasts from 10-75 % prefixes; ../shared/data/curves). With the planned schedule the error grows about as r^2.5
# (a 25 % prefix, r = 1.39, gets 0.027); without it a coming LR decay the prefix cannot show may cut the loss by a
# large factor (ImageNet-style cosine runs end 2-3x below their mid-run loss), so the floor is far wider.
FLOOR_KNOWN_SCHEDULE = 0.012
FLOOR_UNKNOWN_SCHEDULE = 0.6


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
    schedule_known: bool,
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
    floor = FLOOR_KNOWN_SCHEDULE * reach**2.5 if schedule_known else FLOOR_UNKNOWN_SCHEDULE * reach**0.6
    return float(math.sqrt(spread**2 + held**2 + anneal_sd**2 + noise**2 + floor**2))
