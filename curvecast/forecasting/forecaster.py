"""Forecaster: fit curve laws to a run's prefix and forecast the metric at the horizon, with a calibrated interval.

One fit: check the input, drop non-finite points, bin (bounded cost), skip the early transient, then fit each model by
robust variable projection (``varpro.py``). With the planned LR schedule the model is the Multi-Power Law with a prior
on its annealing coefficient (the size of the drop the coming LR decay will bring, which the prefix cannot show),
joined by prior-free variants once part of the decay is seen; without it, Domhan-style families (``hypotheses.py``
picks the candidates). Members are weighted by how well each forecast a held-back tail of the observed curve. The
interval combines the parameter uncertainty, the spread of the ensemble, and the held-back forecast error grown to the
horizon's distance (``uncertainty.py``).
"""

from __future__ import annotations

import math

import numpy as np

from curvecast.forecasting.curves import MPL_ALPHA, Family
from curvecast.forecasting.forecast import Forecast
from curvecast.forecasting.hypotheses import candidate_families, holdout_weights
from curvecast.forecasting.preprocess import Binned, bin_curve, check_inputs
from curvecast.forecasting.schedule import LRSchedule
from curvecast.forecasting.uncertainty import log_scale
from curvecast.forecasting.varpro import fit_grid, huber_weights

__all__ = ["Forecaster"]

# The annealing drop scales with how fast the loss still falls: its prior mean is ANNEAL_KAPPA times the log-log slope
# of the observed tail (relative to the loss) projected to the start of the decay, at least ANNEAL_FLOOR times
# ``anneal_prior`` and at most ANNEAL_CAP (a larger prior drives the forecast of a short prefix negative). An LM loss
# falling at slope 0.07 gets the cooldown's few percent; a vision or speech loss falling at slope 0.3-0.6 gets a much
# larger drop.
ANNEAL_KAPPA = 0.6
ANNEAL_FLOOR = 0.5
ANNEAL_CAP = 0.15
# The interval's uncertainty of that drop scales with the same slope, relative to an LM loss's (0.1): the prior is an
# LM cooldown's, and steeper (vision, graph) losses anneal by amounts it sizes far less well.
ANNEAL_SD_SLOPE = 0.1
# Schedule-aware laws weight each point by (step / last step)^RECENCY: the law describes the later curve the forecast
# extends, while the early transient (the first hundreds of LM steps) bends away from it and would pull the exponent.
# The shape-fitted MPL, fitted only once much of the decay is seen, weights all points alike.
RECENCY = 1.0
ANNEAL_SD_RANGE = (0.5, 3.0)


class _Fitted:
    """One family fitted on a set of bins: best grid point, coefficients, and the coefficient's posterior sd."""

    def __init__(self, family: Family, theta: np.ndarray, coef: np.ndarray, anneal_sd: float) -> None:
        self.family = family
        self.theta = theta
        self.coef = coef
        self.anneal_sd = anneal_sd

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return self.family.predict(np.asarray(t, dtype=np.float64), self.theta, self.coef)


class _Ensemble:
    """The weighted sum of fitted members: the forecast's point curve (a class, so a Forecast pickles)."""

    def __init__(self, members: list[tuple[float, _Fitted]]) -> None:
        self.members = members

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return sum(w * f(t) for w, f in self.members)


class Forecaster:
    """Forecasts a falling metric (a loss) at a horizon step from its observed prefix.

    Args:
        min_points: fewest finite points a forecast is made from.
        max_bins: the curve is averaged into at most this many bins before fitting (bounds the cost of a refit).
        transient: fraction of the observed steps (after warmup) skipped as the early transient.
        holdout: fraction of the observed steps held back to weight the ensemble and measure forecast error.
        anneal_prior: prior mean of the loss drop that annealing the LR fully to zero brings, relative to the loss
            (cooldowns of LLM pretraining runs cut the loss by a few percent: Hägele et al. 2024, Hu et al. 2024);
            the prior mean grows with the observed log-log slope of the loss (``ANNEAL_KAPPA``).
        anneal_prior_sd: prior standard deviation of that drop, relative to its mean.
        interval_scale: multiplies the predictive log-scale (calibration).
    """

    def __init__(
        self,
        min_points: int = 5,
        max_bins: int = 256,
        transient: float = 0.1,
        holdout: float = 0.2,
        anneal_prior: float = 0.035,
        anneal_prior_sd: float = 1.0,
        interval_scale: float = 1.0,
    ) -> None:
        if min_points < 3:
            raise ValueError(f"`min_points` must be at least 3, but got {min_points}")
        if max_bins < 16:
            raise ValueError(f"`max_bins` must be at least 16, but got {max_bins}")
        for name, value in (("transient", transient), ("holdout", holdout)):
            if not 0.0 <= value < 0.9:
                raise ValueError(f"`{name}` must lie in [0, 0.9), but got {value}")
        if anneal_prior < 0 or anneal_prior_sd <= 0 or interval_scale <= 0:
            raise ValueError(
                "`anneal_prior` must be >= 0 and `anneal_prior_sd`, `interval_scale` > 0, but got "
                f"{anneal_prior}, {anneal_prior_sd}, {interval_scale}"
            )
        self.min_points = min_points
        self.max_bins = max_bins
        self.transient = transient
        self.holdout = holdout
        self.anneal_prior = anneal_prior
        self.anneal_prior_sd = anneal_prior_sd
        self.interval_scale = interval_scale

    def fit(
        self,
        steps: np.ndarray,
        values: np.ndarray,
        horizon: int,
        lrs: np.ndarray | LRSchedule | None = None,
        counts: np.ndarray | None = None,
    ) -> Forecast:
        """Fit the observed curve and forecast it at ``horizon``; returns a ``Forecast`` (``ok=False`` says why not).

        Args:
            steps: increasing optimizer steps of the observations.
            values: the metric at those steps (non-finite values are dropped).
            horizon: the step to forecast, at or after the last step (usually ``max_steps``).
            lrs: optional planned LR of every step 0..horizon: ``horizon + 1`` values, or an ``LRSchedule`` of that
                horizon (a long schedule in knots costs no per-step array; the live run passes its own).
            counts: optional number of raw points averaged into each value (weights of binned history rows).
        """
        horizon = int(horizon)
        s, v, c, lr = check_inputs(steps, values, horizon, lrs, counts)
        last = int(math.floor(s[-1])) if len(s) else 0
        finite = np.isfinite(v)
        if not finite.any():
            return Forecast.failed("no finite values" if len(v) else "no points", horizon, last)
        if finite.sum() < self.min_points:
            return Forecast.failed(f"too few finite points ({int(finite.sum())} < {self.min_points})", horizon, last)
        binned = bin_curve(s[finite], v[finite], c[finite], self.max_bins)
        schedule = _usable_schedule(lr)
        start = binned.steps[0]
        if schedule is not None:
            start = max(start, float(schedule.peak_step))
        start += self.transient * (binned.steps[-1] - start)
        keep = binned.steps >= start
        if keep.sum() < self.min_points:
            keep = np.zeros_like(keep)
            keep[-self.min_points :] = True
        data = Binned(binned.steps[keep], binned.values[keep], binned.counts[keep], binned.noise)
        self.binned_ = data
        self.schedule_ = schedule
        return self._forecast(data, horizon, schedule, float(s[-1]))

    def _forecast(self, data: Binned, horizon: int, schedule: LRSchedule | None, t_obs: float) -> Forecast:
        t_last = float(data.steps[-1])
        positive = bool(np.all(data.values > 0))
        level = float(np.median(data.values[-max(3, len(data.values) // 10) :]))
        known = schedule is not None
        self.slope_ = _log_slope(data)
        if schedule is not None:
            # The drop follows how fast the loss still falls when the decay starts, not now: early in a run the
            # slope is steep and shrinks about as the reducible loss does, as t^-alpha (the exponent's prior median).
            later = schedule.drop_step[(schedule.drop_step > data.steps[-1]) & (schedule.drop > 0)]
            if later.size:
                self.slope_ *= (float(later[0]) / float(data.steps[-1])) ** -MPL_ALPHA
        cut = data.steps[0] + (1.0 - self.holdout) * (t_last - data.steps[0])
        families, schedule = candidate_families(data, schedule, cut, t_obs, horizon, positive)
        head = data.steps <= cut
        can_hold_back = head.sum() >= 5 and (~head).sum() >= 2
        fits, errors, backtests = [], [], []
        for fam in families:
            full = self._fit_family(fam, data, level, schedule)
            fits.append(full)
            if can_hold_back:
                part = self._fit_family(fam, _subset(data, head), level, schedule)
                rel = part(data.steps[~head]) / data.values[~head] - 1.0
                err = float(np.sqrt(np.average(rel**2, weights=data.counts[~head])))
                backtests.append(float(part(np.array([t_last]))[0] / full(np.array([t_last]))[0] - 1.0))
            else:  # too short to hold anything back: equal weights, no backtest
                err = 1.0
                backtests.append(math.nan)
            errors.append(err)
        errs = np.maximum(np.asarray(errors), 1e-6)
        at_h = np.array([float(horizon)])
        alive = np.array([f(at_h)[0] > 0 for f in fits])  # a member that ends at or below zero has no say
        if not alive.any():
            return Forecast.failed("no fitted curve stays positive", horizon, int(t_obs))
        weights = np.zeros(len(fits))
        weights[alive] = holdout_weights(
            [f.family.name for f, a in zip(fits, alive, strict=True) if a], errs[alive], known
        )
        if not weights.sum() > 0:
            return Forecast.failed("no fitted curve stays positive", horizon, int(t_obs))
        weights /= weights.sum()
        members = [(w, f) for w, f in zip(weights, fits, strict=True) if w > 0]
        curve = _Ensemble(members)

        at_h = np.array([float(horizon)])
        finals = np.array([f(at_h)[0] for _, f in members])
        w_m = np.array([w for w, _ in members])
        final = float(np.dot(w_m, finals))
        current = float(curve(np.array([t_obs]))[0])
        if not (math.isfinite(final) and final > 0):
            reason = f"the fitted curve does not stay positive (forecast {final:g})"
            return Forecast.failed(reason, horizon, int(t_obs))
        anneal_sd = float(np.dot(w_m, [f.anneal_sd for _, f in members]))
        bt = np.asarray(backtests, dtype=np.float64)[weights > 0]
        scale = self.interval_scale * log_scale(
            finals=finals,
            weights=w_m,
            backtest=float(np.nanmean(np.abs(bt))) if np.isfinite(bt).any() else math.nan,
            holdout_span=t_last - cut,
            first=float(data.steps[0]),
            last=t_last,
            horizon=float(horizon),
            anneal_sd=anneal_sd / final * float(np.clip(self.slope_ / ANNEAL_SD_SLOPE, *ANNEAL_SD_RANGE)),
            schedule_known=known,
            noise=data.noise / math.sqrt(max(float(data.counts[-len(data.counts) // 10 - 1 :].sum()), 1.0)),
        )
        self.members_ = members
        model = _describe(members[0][1])
        if len(members) > 1:
            model = " + ".join(f"{w:.2f} {_describe(f)}" for w, f in members)
        return Forecast(
            ok=True,
            reason=None,
            horizon=horizon,
            last_step=int(math.floor(t_obs)),
            final=final,
            log_scale=scale,
            model=model,
            current=current,
            curve=curve,
        )

    def _fit_family(self, fam: Family, data: Binned, level: float, schedule: LRSchedule | None) -> _Fitted:
        """Robust variable-projection fit of one family: two Huber reweightings on top of the noise weights."""
        t, y, c = data.steps, data.values, data.counts
        design = fam.columns(t, fam.grid)
        prior: tuple[tuple[int, float, float], ...] = ()
        if fam.anneal_index is not None:
            mean = max(self.anneal_prior * ANNEAL_FLOOR, min(ANNEAL_KAPPA * self.slope_, ANNEAL_CAP)) * level
            prior = ((fam.anneal_index, mean, max(self.anneal_prior_sd * mean, 1e-9 * level)),)
        # Errors are relative (a log-space fit): point noise plus a misfit floor, both relative, the floor starting
        # at 0.2 % and refined from the residuals.
        scale = np.maximum(np.abs(y), 1e-12 * abs(level))
        noise2 = data.noise**2 / c
        mis = 2e-3
        robust = np.ones_like(y)
        planned = fam.name.startswith("mpl") and fam.name not in ("mpl-cosine-guess", "mpl-shaped")
        recency = (t / t[-1]) ** RECENCY if planned else 1.0
        for _ in range(3):
            var = scale**2 * (noise2 + mis**2)
            res = fit_grid(design, y, robust * recency / var, fam.nonneg, prior)
            g = int(np.nanargmin(res.objective + fam.penalty))
            r = (y - design[g] @ res.coef[g]) / scale
            mis = max(float(np.sqrt(max(np.median(r**2) * 2.2 - np.median(noise2), 0.0))), 1e-5)
            robust = huber_weights(r, np.sqrt(noise2 + mis**2))
        anneal_sd = 0.0
        if fam.anneal_index is not None:
            var = scale**2 * (noise2 + mis**2)
            x = design[g]
            gram = (x * (robust / var)[:, None]).T @ x
            j, _, sd = prior[0]
            gram[j, j] += 1.0 / sd**2
            try:
                anneal_sd = float(np.sqrt(max(np.linalg.inv(gram)[j, j], 0.0)))
            except np.linalg.LinAlgError:
                anneal_sd = sd
            # The remaining annealing effect, not the coefficient, is what the horizon forecast is unsure of.
            if schedule is not None:
                ld = schedule.anneal(np.array([t[-1], schedule.horizon]))
                anneal_sd *= max(ld[1] - ld[0], 0.0)
        return _Fitted(fam, fam.grid[g], res.coef[g], anneal_sd)


def _usable_schedule(lr: np.ndarray | LRSchedule | None) -> LRSchedule | None:
    """The schedule the laws can use: None without one or with an LR of 0 throughout (nothing to normalise by)."""
    if isinstance(lr, LRSchedule):
        return lr if lr.peak_lr > 0 else None
    return LRSchedule(lr) if lr is not None and lr.max() > 0 else None


def _log_slope(data: Binned) -> float:
    """How fast the metric falls at the end of the window: -d log(value) / d log(step) over its later half."""
    t, y, c = data.steps, data.values, data.counts
    ok = (t > 0) & (y > 0)
    if ok.sum() < 3:
        return 0.0
    lt, ly, w = np.log(t[ok]), np.log(y[ok]), c[ok]
    late = lt >= 0.5 * (lt[0] + lt[-1])
    if late.sum() < 3:
        late = np.ones_like(lt, dtype=bool)
    lt, ly, w = lt[late], ly[late], w[late]
    x = lt - np.average(lt, weights=w)
    den = float(np.sum(w * x * x))
    return max(-float(np.sum(w * x * ly)) / den, 0.0) if den > 0 else 0.0


def _subset(data: Binned, mask: np.ndarray) -> Binned:
    return Binned(data.steps[mask], data.values[mask], data.counts[mask], data.noise)


def _describe(f: _Fitted) -> str:
    theta = ",".join(f"{x:.3g}" for x in f.theta)
    coef = ",".join(f"{x:.4g}" for x in f.coef)
    return f"{f.family.name}(theta={theta}; coef={coef})"
