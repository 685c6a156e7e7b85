"""Forecaster: fit curve laws to a run's prefix and forecast the metric at the horizon, with a calibrated interval.

One fit: check the input, drop non-finite points, map the metric to a positive falling quantity (``metric_map.py``: a
loss as it is, an accuracy as its distance to the bound, a loss that goes negative past an estimated floor), bin
(bounded cost), skip the early transient, then fit each model by robust variable projection (``family_fit.py``). With
the planned LR schedule the model is the Multi-Power Law with a prior on its annealing coefficient (the size of the drop
the coming LR decay will bring, which the prefix cannot show), joined by prior-free variants once part of the decay is
seen; without it (or at a planned constant LR), Domhan-style families (``hypotheses.py`` picks the candidates) and the
flat hypothesis, the curve's recent level (``flat.py``): a curve that is not learning is forecast flat; finished runs of
the same recipe add a member that follows their shape (``references.py``). Members are weighted by how well each
forecast a held-back tail of the observed curve (a stalled curve's flat member with a prior weight, and no say for a law
that would speed its fall up past the data); when the laws disagree past what an interval can say, a stalled curve, or
one whose tail its level forecast best, is forecast at that level alone. The interval combines the parameter
uncertainty, the spread of the ensemble, and the held-back forecast error grown to the horizon's distance (a prior in
its place where the prefix is too short to hold anything back; ``uncertainty.py``), is never narrower than one logged
point's scatter (the value logged at the horizon carries it), and is calibrated per kind of metric without a schedule
(``sized_forecast.py``); the fitted constants live in ``calibration.py``. A metric whose floor the data only estimates
(a reward) is fitted a second time with that floor further out, for its interval's better side (``open_ceiling.py``).
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from curvecast.forecasting.calibration import (
    ANNEAL_PRIOR,
    ANNEAL_PRIOR_SD,
    HOLDOUT,
    MAX_REACH,
    MPL_ALPHA,
    TRANSIENT,
)
from curvecast.forecasting.curves import Family
from curvecast.forecasting.family_fit import AnnealPrior, FittedFamily, fit_family
from curvecast.forecasting.fit_context import FitContext, log_slope
from curvecast.forecasting.fit_diagnostics import Member
from curvecast.forecasting.flat import FlatMember, flat_candidate, stall_window
from curvecast.forecasting.forecast import Forecast
from curvecast.forecasting.hypotheses import (
    CONSTANT_LR_FAMILIES,
    candidate_families,
    ensemble_weights,
    flat_share_capped,
    spread_alternatives,
    stalled_flat_weighed,
    without_cliffs,
)
from curvecast.forecasting.metric_map import MetricMap, check_mode_bounds, metric_map
from curvecast.forecasting.open_ceiling import with_better_side
from curvecast.forecasting.preprocess import Binned, bin_curve, check_horizon, check_inputs, fittable, point_scatter
from curvecast.forecasting.real_values import check_flag, check_value
from curvecast.forecasting.references import (
    Reference,
    ReferenceMember,
    ReferenceShape,
    check_references,
    reference_shape,
)
from curvecast.forecasting.schedule import LRSchedule
from curvecast.forecasting.sized_forecast import sized_forecast

__all__ = ["Forecaster"]


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
        open_ceiling: for a metric whose best reachable value the data only estimates (a reward, a loss through
            zero), let the interval's better side reach where the recent improvement, continued in a straight line,
            would take it by the horizon (``open_ceiling.py``); the point forecast stays within what the data supports.

    Example:
        >>> import numpy as np
        >>> steps = np.arange(1, 401)
        >>> loss = 2.0 + 3.0 / np.sqrt(steps)  # observed up to step 400 of 1000
        >>> forecast = Forecaster().fit(steps, loss, horizon=1000)
        >>> forecast.ok, round(forecast.final, 2), [round(x, 2) for x in forecast.interval(0.8)]
        (True, 2.11, [1.89, 2.34])
        >>> accuracy = 0.9 - 0.5 / np.sqrt(steps)  # higher is better, at most 1
        >>> forecast = Forecaster().fit(steps, accuracy, horizon=1000, mode="max", bounds=(0.0, 1.0))
        >>> forecast.mode, round(forecast.final, 3), 500 < forecast.step_to_reach(0.88) < 800
        ('max', 0.882, True)
        >>> Forecaster().fit(steps[:3], loss[:3], horizon=1000).reason
        'too few finite points (3 < 5)'
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
        open_ceiling: bool = True,
    ) -> None:
        for name, count in (("min_points", min_points), ("max_bins", max_bins)):
            if isinstance(count, bool) or not isinstance(count, numbers.Integral):
                raise TypeError(f"Expected `{name}` to be an integer, but got {count!r} ({type(count).__name__})")
        if min_points < 3:
            raise ValueError(f"`min_points` must be at least 3, but got {min_points}")
        if max_bins < 16:
            raise ValueError(f"`max_bins` must be at least 16, but got {max_bins}")
        fractions = {"transient": transient, "holdout": holdout}
        priors = {"anneal_prior": anneal_prior, "anneal_prior_sd": anneal_prior_sd, "interval_scale": interval_scale}
        for name, value in fractions.items():  # check_value: a string or None is a TypeError naming it
            if not 0.0 <= check_value(value, name) < 0.9:
                raise ValueError(f"`{name}` must lie in [0, 0.9), but got {value}")
        for name, value in priors.items():
            if not math.isfinite(check_value(value, name)):
                raise ValueError(f"Expected `{name}` to be finite, but got {value}")
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
        self.open_ceiling = check_flag(open_ceiling, "open_ceiling")

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

        Nothing of the fit stays on the forecaster: what it was made of travels on ``Forecast.diagnostics``.

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
        horizon = check_horizon(horizon)
        lo, hi = check_mode_bounds(mode, bounds)
        refs = check_references(references)
        s, v, c, lr = check_inputs(steps, values, horizon, lrs, counts)
        last = int(math.floor(s[-1])) if len(s) else 0
        finite = fittable(v, self.min_points)
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
        schedule = _usable_schedule(lr)
        forecast = self._fit_mapped(s[finite], y, c[finite], mapping, horizon, schedule, refs, mode, float(s[-1]))
        logged = s[finite]
        # Only for a made forecast: its horizon is a float (at most MAX_REACH out; an int past 1e308 is not).
        if not (forecast.ok and self.open_ceiling) or logged[-1] <= logged[0]:
            return forecast
        roomy = metric_map(v[finite], mode, lo, hi, (horizon - logged[-1]) / (logged[-1] - logged[0]))
        if roomy.base != mapping.base:  # a floor the data only estimates: the interval's better side reads past it
            yr = roomy.to_y(v[finite])
            forecast = with_better_side(
                forecast, self._fit_mapped(s[finite], yr, c[finite], roomy, horizon, schedule, refs, mode, float(s[-1]))
            )
        return forecast

    def _fit_mapped(
        self, s: np.ndarray, y: np.ndarray, c: np.ndarray, mapping: MetricMap, horizon: int,
        schedule: LRSchedule | None, refs: list[Reference], mode: str, t_obs: float,
    ) -> Forecast:  # fmt: skip
        """The forecast of the finite points ``s``, ``y`` (the metric on ``mapping``, counts ``c``) of a prefix logged
        up to step ``t_obs``, in the metric's units."""
        last = int(math.floor(t_obs))
        data = self._window(bin_curve(s, y, c, self.max_bins), schedule)
        # Overflow in a far extrapolation or a singular system is a forecast that could not be made, not a crash.
        try:
            with np.errstate(all="ignore"):
                shapes = [reference_shape(r, mapping, self.max_bins) for r in refs]
                scatter = point_scatter(y, c)
                shapes = [x for x in shapes if x]
                # The span the prefix covers starts at its first positive step: a point at step 0 stands about one
                # logging interval before the next, not e^(log of the last step) of them. The run itself started one
                # logging interval in at the latest (``origin``): a log that starts late is of an older run.
                logged = s[s > 0]
                start = float(logged[0]) if logged.size else 1.0
                origin = min(start, float(logged[1] - logged[0])) if logged.size > 1 else start
                forecast = self._forecast(data, horizon, schedule, t_obs, shapes, mode, scatter, start, origin)
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

    def _window(self, binned: Binned, schedule: LRSchedule | None) -> Binned:
        """The bins the laws are fitted on: from the LR peak on, less the early ``transient``, at least
        ``min_points``."""
        start = binned.steps[0]
        if schedule is not None:
            start = max(start, float(schedule.peak_step))
        start += self.transient * (binned.steps[-1] - start)
        keep = binned.steps >= start
        if keep.sum() < self.min_points:
            keep = np.zeros_like(keep)
            keep[-self.min_points :] = True
        return Binned(binned.steps[keep], binned.values[keep], binned.counts[keep], binned.noise)

    def _forecast(
        self,
        data: Binned,
        horizon: int,
        schedule: LRSchedule | None,
        t_obs: float,
        shapes: list[ReferenceShape],
        mode: str = "min",
        scatter: float = 0.0,
        start: float = 0.0,
        origin: float = 0.0,
    ) -> Forecast:
        """The forecast of the falling quantity y in ``data`` (all values > 0), in y's units: fit the candidates,
        weigh them on the held-back tail, then size the interval (``start``: the first logged step; ``origin``: the
        step the run's training is counted from, at most one logging interval)."""
        if horizon > MAX_REACH * max(t_obs, 1.0):
            # An int past the float range (10**400) has no float ratio: int / float would raise OverflowError.
            times = f"{horizon / max(t_obs, 1.0):.3g}x" if horizon <= sys.float_info.max else "more than 1e308 times"
            reason = f"the horizon is {times} the last step, past the {MAX_REACH:g}x forecast"
            return Forecast.failed(reason, horizon, int(t_obs))
        fit = self._context(data, horizon, schedule, t_obs, mode, scatter, start, origin)
        fits, errors, backtests = self._fit_candidates(fit, shapes)
        weights = ensemble_weights(fit, fits, errors)
        if weights is None:
            return Forecast.failed("no fitted curve stays positive", horizon, int(t_obs))
        if not fit.known and fit.stalled:
            weights = without_cliffs(fits, weights, float(fit.data.steps[0]), fit.t_last, float(fit.horizon))
            if weights is None:
                return Forecast.failed("no fitted curve stays positive", horizon, int(t_obs))
        flat = [i for i, f in enumerate(fits) if isinstance(f, FlatMember)]
        if flat and fit.stalled:
            weights = stalled_flat_weighed(fits, weights)
        elif flat and fit.known:
            weights = flat_share_capped(fit, fits, errors, weights)
        members = tuple((w, f) for w, f in zip(weights, fits, strict=True) if w > 0)
        forecast = sized_forecast(
            fit, members, np.asarray(backtests, dtype=np.float64)[weights > 0], self.interval_scale,
            spread_alternatives(fit, fits, errors),
        )  # fmt: skip
        if forecast.ok or not flat or forecast.diagnostics is None:
            return forecast
        if not (fit.stalled or weights[flat[0]] >= weights.max()):
            return forecast  # a curve still falling, the flat hypothesis not the best: too uncertain it stays
        # The laws disagree past what an interval can say: a curve whose future no law can tell, stalled or whose
        # held-back tail its level forecast best, is forecast at that level (the flat hypothesis alone), with the
        # interval that hypothesis' own held-back error gives, at most the widest a forecast may have.
        i = flat[0]
        alone = sized_forecast(fit, ((1.0, fits[i]),), np.array([backtests[i]], dtype=np.float64), self.interval_scale)
        return alone if alone.ok else forecast

    def _context(
        self,
        data: Binned,
        horizon: int,
        schedule: LRSchedule | None,
        t_obs: float,
        mode: str = "min",
        scatter: float = 0.0,
        start: float = 0.0,
        origin: float = 0.0,
    ) -> FitContext:
        """The values of one fit its steps share: the recent level, the slope behind the prior, the hold-back cut,
        whether the curve has stalled, and the scatter of one logged point (at least the noise the fit weighs by)."""
        level = float(np.median(data.values[-max(3, len(data.values) // 10) :]))
        slope = log_slope(data)
        if schedule is not None:
            # The drop follows how fast the loss still falls when the decay starts, not now: early in a run the
            # slope is steep and shrinks about as the reducible loss does, as t^-alpha (the exponent's prior median).
            later = schedule.drop_step[(schedule.drop_step > data.steps[-1]) & (schedule.drop > 0)]
            if later.size:
                slope *= (float(later[0]) / float(data.steps[-1])) ** -MPL_ALPHA
        cut = data.steps[0] + (1.0 - self.holdout) * (float(data.steps[-1]) - data.steps[0])
        stalled = stall_window(data) is not None
        noise = max(scatter, data.noise)
        return FitContext(data, horizon, t_obs, schedule, level, slope, cut, stalled, mode, noise, start, origin)

    def _fit_candidates(
        self, fit: FitContext, shapes: list[ReferenceShape]
    ) -> tuple[list[Member], list[float], list[float]]:
        """Every candidate (the families, then the references' shapes) fitted: the members, their held-back errors
        and their backtests."""
        data = fit.data
        families, laws = candidate_families(data, fit.schedule, fit.cut, fit.t_obs, fit.horizon, True)
        head = data.steps <= fit.cut
        can_hold_back = head.sum() >= 5 and (~head).sum() >= 2
        fits: list[Member] = []
        errors, backtests = [], []
        candidates: list[Family | None] = [*families, None] if shapes else list(families)  # None: the references
        for fam in candidates:
            full, err, backtest = self._fit_candidate(fit, fam, shapes, laws, head if can_hold_back else None)
            fits.append(full)
            errors.append(err if math.isfinite(err) else math.inf)
            backtests.append(backtest)
        if not fit.known or CONSTANT_LR_FAMILIES & {f.name for f in families}:
            # At a constant (or unknown) LR nothing says the curve must fall: the flat hypothesis competes.
            full, err, backtest = flat_candidate(data, head if can_hold_back else None)
            fits.append(full)
            errors.append(err if math.isfinite(err) else math.inf)
            backtests.append(backtest)
        return fits, errors, backtests

    def _fit_candidate(
        self,
        fit: FitContext,
        fam: Family | None,
        shapes: list[ReferenceShape],
        laws: LRSchedule | None,
        head: np.ndarray | None,
    ) -> tuple[FittedFamily | ReferenceMember, float, float]:
        """One family (or, for ``fam=None``, the references' ``shapes``) fitted on all the bins and on the ``head``
        alone: the member, the head's fit's error on the held-back tail, and how far the head's fit missed the full
        fit at the last bin (the backtest). Without a ``head`` (too short to hold anything back): error 1, no
        backtest. ``laws``: the schedule the families assume; the references line up by the planned one only."""
        data = fit.data
        if fam is None:
            full: FittedFamily | ReferenceMember = ReferenceMember(shapes, fit.horizon, data, fit.schedule)
        else:
            # The columns are a function of each step alone: the held-back fit takes the head's rows of the full
            # design instead of building its own (building it is most of a schedule-aware fit's cost).
            design = fam.columns(data.steps, fam.grid)
            full = fit_family(fam, data, design, self._anneal_prior(fit), laws)
        if head is None:
            return full, 1.0, math.nan
        sub = _subset(data, head)
        if fam is None:
            part: FittedFamily | ReferenceMember = ReferenceMember(shapes, fit.horizon, sub, fit.schedule)
        else:
            part = fit_family(fam, sub, design[:, head], self._anneal_prior(fit), laws)
        rel = part(data.steps[~head]) / data.values[~head] - 1.0
        err = float(np.sqrt(np.average(rel**2, weights=data.counts[~head])))
        t_last = np.array([fit.t_last])
        return full, err, float(part(t_last)[0] / full(t_last)[0] - 1.0)

    def _anneal_prior(self, fit: FitContext) -> AnnealPrior:
        """The prior on the annealing coefficient: it scales with the fit's level and slope."""
        return AnnealPrior(self.anneal_prior, self.anneal_prior_sd, fit.level, fit.slope)


def _usable_schedule(lr: np.ndarray | LRSchedule | None) -> LRSchedule | None:
    """The schedule the laws can use: None without one or with an LR of 0 throughout (nothing to normalise by)."""
    if isinstance(lr, LRSchedule):
        return lr if lr.peak_lr > 0 else None
    return LRSchedule(lr) if lr is not None and lr.max() > 0 else None


def _subset(data: Binned, mask: np.ndarray) -> Binned:
    return Binned(data.steps[mask], data.values[mask], data.counts[mask], data.noise)
