"""Forecaster: fit curve laws to a run's prefix and forecast the metric at the horizon, with a calibrated interval.

One fit: check the input, drop non-finite points, map the metric to a positive falling quantity (``metric_map.py``:
a loss as it is, an accuracy as its distance to the bound, a loss that goes negative past an estimated floor), bin
(bounded cost), skip the early transient, then fit each model by robust variable projection (``varpro.py``). With the
planned LR schedule the model is the Multi-Power Law with a prior on its annealing coefficient (the size of the drop
the coming LR decay will bring, which the prefix cannot show), joined by prior-free variants once part of the decay is
seen; without it, Domhan-style families (``hypotheses.py`` picks the candidates); finished runs of the same recipe add
a member that follows their shape (``references.py``). Members are weighted by how well each forecast a held-back
tail of the observed curve. The interval combines the parameter uncertainty, the spread of the ensemble, and the
held-back forecast error grown to the horizon's distance (``uncertainty.py``); the fitted constants live in
``calibration.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from curvecast.forecasting.calibration import (
    ANNEAL_CAP,
    ANNEAL_FLOOR,
    ANNEAL_KAPPA,
    ANNEAL_PRIOR,
    ANNEAL_PRIOR_SD,
    ANNEAL_SD_RANGE,
    ANNEAL_SD_SLOPE,
    HOLDOUT,
    INTERVAL_SCALE_KNOWN,
    INTERVAL_SCALE_UNKNOWN,
    MAX_LOG_SCALE,
    MAX_REACH,
    MPL_ALPHA,
    RECENCY,
    TRANSIENT,
)
from curvecast.forecasting.curves import Family
from curvecast.forecasting.forecast import Forecast
from curvecast.forecasting.hypotheses import candidate_families, holdout_weights
from curvecast.forecasting.metric_map import check_mode_bounds, metric_map
from curvecast.forecasting.preprocess import Binned, bin_curve, check_inputs
from curvecast.forecasting.references import (
    Reference,
    ReferenceMember,
    ReferenceShape,
    check_references,
    reference_shape,
)
from curvecast.forecasting.schedule import LRSchedule
from curvecast.forecasting.uncertainty import log_scale, log_scale_parts
from curvecast.forecasting.varpro import fit_grid, huber_weights

__all__ = ["Forecaster"]


class _Fitted:
    """One family fitted on a set of bins: best grid point, coefficients, and the coefficient's posterior sd."""

    def __init__(self, family: Family, theta: np.ndarray, coef: np.ndarray, anneal_sd: float) -> None:
        self.family = family
        self.theta = theta
        self.coef = coef
        self.anneal_sd = anneal_sd

    @property
    def name(self) -> str:
        return self.family.name

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return self.family.predict(np.asarray(t, dtype=np.float64), self.theta, self.coef)

    def describe(self) -> str:
        theta = ",".join(f"{x:.3g}" for x in self.theta)
        coef = ",".join(f"{x:.4g}" for x in self.coef)
        return f"{self.family.name}(theta={theta}; coef={coef})"


class _Ensemble:
    """The weighted sum of fitted members: the forecast's point curve (a class, so a Forecast pickles)."""

    def __init__(self, members: list[tuple[float, _Fitted | ReferenceMember]]) -> None:
        self.members = members

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return sum(w * f(t) for w, f in self.members)


class Forecaster:
    """Forecasts a metric at a horizon step from its observed prefix: a loss, or any metric with its direction.

    Args:
        min_points: fewest finite points a forecast is made from.
        max_bins: the curve is averaged into at most this many bins before fitting (bounds the cost of a refit).
        transient: fraction of the observed steps (after warmup) skipped as the early transient.
        holdout: fraction of the observed steps held back to weight the ensemble and measure forecast error.
        anneal_prior: prior mean of the loss drop that annealing the LR fully to zero brings, relative to the loss;
            the prior mean grows with the observed log-log slope of the loss (``calibration.ANNEAL_KAPPA``).
        anneal_prior_sd: prior standard deviation of that drop, relative to its mean.
        interval_scale: multiplies the calibrated predictive log-scale (1 keeps the calibration).
    """

    def __init__(
        self,
        min_points: int = 5,
        max_bins: int = 256,
        transient: float = TRANSIENT,
        holdout: float = HOLDOUT,
        anneal_prior: float = ANNEAL_PRIOR,
        anneal_prior_sd: float = ANNEAL_PRIOR_SD,
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
        *,
        mode: str = "min",
        bounds: tuple[float | None, float | None] | None = None,
        references: Sequence[Reference] | None = None,
    ) -> Forecast:
        """Fit the observed curve and forecast it at ``horizon``; returns a ``Forecast`` (``ok=False`` says why not).

        Args:
            steps: increasing optimizer steps of the observations.
            values: the metric at those steps (non-finite values are dropped).
            horizon: the step to forecast, at or after the last step (usually ``max_steps``).
            lrs: optional planned LR of every step 0..horizon: ``horizon + 1`` values, or an ``LRSchedule`` of that
                horizon (a long schedule in knots costs no per-step array; the live run passes its own).
            counts: optional number of raw points averaged into each value (weights of binned history rows).
            mode: ``"min"`` when lower is better (a loss), ``"max"`` when higher is better (accuracy, reward).
            bounds: optional ``(lo, hi)`` range of the metric (None for an open side), e.g. ``(0, 1)`` for an
                accuracy: the bound on the good side is the floor the forecast approaches, and intervals stay inside.
            references: finished runs of the same recipe (``Reference``): their shapes join the ensemble.
        """
        horizon = int(horizon)
        lo, hi = check_mode_bounds(mode, bounds)
        refs = check_references(references)
        s, v, c, lr = check_inputs(steps, values, horizon, lrs, counts)
        last = int(math.floor(s[-1])) if len(s) else 0
        finite = np.isfinite(v)
        if not finite.any():
            return Forecast.failed("no finite values" if len(v) else "no points", horizon, last)
        with np.errstate(all="ignore"):  # values near the float limit overflow here: caught just below
            mapping = metric_map(v[finite], mode, lo, hi)
            y = mapping.to_y(v[finite])
            too_large = not (math.isfinite(mapping.base) and np.all(np.isfinite(y * y)))  # squared in the fit
        if finite.sum() < self.min_points:
            reason = f"too few finite points ({int(finite.sum())} < {self.min_points})"
            return Forecast.failed(reason, horizon, last, mapping)
        if too_large:
            return Forecast.failed("the values are too large to forecast in floating point", horizon, last, mapping)
        binned = bin_curve(s[finite], y, c[finite], self.max_bins)
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
        # Overflow in a far extrapolation or a singular system is a forecast that could not be made, not a crash.
        try:
            with np.errstate(all="ignore"):
                shapes = [reference_shape(r, mapping, self.max_bins) for r in refs]
                forecast = self._forecast(data, horizon, schedule, float(s[-1]), [x for x in shapes if x])
        except (np.linalg.LinAlgError, FloatingPointError, OverflowError, ZeroDivisionError) as err:
            return Forecast.failed(f"the fit failed numerically ({err})", horizon, last, mapping)
        if not forecast.ok:
            return replace(forecast, mapping=mapping)
        return replace(
            forecast,
            final=float(mapping.to_metric(forecast.final)),
            current=float(mapping.to_metric(forecast.current)),
            mapping=mapping,
        )

    def _forecast(
        self, data: Binned, horizon: int, schedule: LRSchedule | None, t_obs: float, shapes: list[ReferenceShape]
    ) -> Forecast:
        """The forecast of the falling quantity y in ``data`` (all values > 0), in y's units."""
        t_last = float(data.steps[-1])
        if horizon > MAX_REACH * max(t_obs, 1.0):
            reason = f"the horizon is {horizon / max(t_obs, 1.0):.3g}x the last step, past the {MAX_REACH:g}x forecast"
            return Forecast.failed(reason, horizon, int(t_obs))
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
        given = schedule  # the references line up by the planned schedule only, never by a guessed one
        families, schedule = candidate_families(data, schedule, cut, t_obs, horizon, True)
        head = data.steps <= cut
        can_hold_back = head.sum() >= 5 and (~head).sum() >= 2
        fits: list[_Fitted | ReferenceMember] = []
        errors, backtests = [], []
        candidates = [(fam, None) for fam in families] + [(None, shapes)] * bool(shapes)
        for fam, refs in candidates:
            if fam is None:
                full = ReferenceMember(refs, horizon, data, given)
            else:
                # The columns are a function of each step alone: the held-back fit takes the head's rows of the
                # full design instead of building its own (building it is most of a schedule-aware fit's cost).
                design = fam.columns(data.steps, fam.grid)
                full = self._fit_family(fam, data, level, schedule, design)
            fits.append(full)
            if can_hold_back:
                sub = _subset(data, head)
                if fam is None:
                    part = ReferenceMember(refs, horizon, sub, given)
                else:
                    part = self._fit_family(fam, sub, level, schedule, design[:, head])
                rel = part(data.steps[~head]) / data.values[~head] - 1.0
                err = float(np.sqrt(np.average(rel**2, weights=data.counts[~head])))
                backtests.append(float(part(np.array([t_last]))[0] / full(np.array([t_last]))[0] - 1.0))
            else:  # too short to hold anything back: equal weights, no backtest
                err = 1.0
                backtests.append(math.nan)
            errors.append(err if math.isfinite(err) else math.inf)
        at_h = np.array([float(horizon)])
        finals_all = np.array([float(f(at_h)[0]) for f in fits])
        alive = np.isfinite(finals_all) & (finals_all > 0)  # a member that ends at or below zero has no say
        alive &= np.isfinite(errors)
        if not alive.any():
            return Forecast.failed("no fitted curve stays positive", horizon, int(t_obs))
        weights = np.zeros(len(fits))
        errs = np.maximum(np.asarray(errors)[alive], 1e-6)
        weights[alive] = holdout_weights([f.name for f, a in zip(fits, alive, strict=True) if a], errs, known)
        if not weights.sum() > 0:
            return Forecast.failed("no fitted curve stays positive", horizon, int(t_obs))
        weights /= weights.sum()
        members = [(w, f) for w, f in zip(weights, fits, strict=True) if w > 0]
        curve = _Ensemble(members)

        finals = np.array([f(at_h)[0] for _, f in members])
        w_m = np.array([w for w, _ in members])
        final = float(np.dot(w_m, finals))
        current = float(curve(np.array([t_obs]))[0])
        if not (math.isfinite(final) and final > 0):
            reason = f"the fitted curve does not stay positive (forecast {final:g})"
            return Forecast.failed(reason, horizon, int(t_obs))
        anneal_sd = float(np.dot(w_m, [f.anneal_sd for _, f in members]))
        bt = np.asarray(backtests, dtype=np.float64)[weights > 0]
        calibrated = self.interval_scale * (INTERVAL_SCALE_KNOWN if known else INTERVAL_SCALE_UNKNOWN)
        self.scale_parts_ = log_scale_parts(
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
        scale = calibrated * log_scale(self.scale_parts_)
        if not scale <= MAX_LOG_SCALE:
            reason = (
                f"too uncertain to forecast: the horizon lies too far past the data (log-scale {scale:.3g} > "
                f"{MAX_LOG_SCALE:g})"
            )
            return Forecast.failed(reason, horizon, int(t_obs))
        self.members_ = members
        model = members[0][1].describe()
        if len(members) > 1:
            model = " + ".join(f"{w:.2f} {f.describe()}" for w, f in members)
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

    def _fit_family(
        self, fam: Family, data: Binned, level: float, schedule: LRSchedule | None, design: np.ndarray
    ) -> _Fitted:
        """Robust variable-projection fit of one family on its ``design`` at ``data``'s steps: two Huber reweightings
        on top of the noise weights."""
        t, y, c = data.steps, data.values, data.counts
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
