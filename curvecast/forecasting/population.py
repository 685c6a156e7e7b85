"""The population rule: should a trial of a sweep go on, judged against the other trials of the sweep?

A sweep's other trials say two things about a trial at step ``s``: where they stood at ``s`` (the ranking Optuna's
``MedianPruner`` reads), and, for those that finished, where they went from there. The finished trials' finals,
regressed on their levels at ``s`` (in log space for a positive loss, so runs of different scales improve by similar
factors), predict where this trial ends, with a Student-t predictive distribution whose spread is the regression's
residual spread: heavy-tailed while few trials are in. Where a sweep's curves cross (a high LR trails until its
decay), the levels at ``s`` predict the finals badly, the spread is wide and nothing is pruned on them; where the
ranking holds, the spread is narrow and a trial clearly behind the best is pruned early.

Before enough trials have finished, a trial is pruned only when it is behind most of the trials at the same step
*and* its own forecast (the caller's: a fit of its curve with its planned LR schedule) says it ends worse than the
best value any trial has already reached. Once the finished trials speak, the trial's own forecast may still keep a
trial the population gives up on, when it sees a decay ahead that lifts it within reach of the best; and while their
prediction has a single degree of freedom (three of them), that early rule still prunes a trial they keep where their
record agrees with the ranking and no planned decay is ahead of it.

The trial's own forecast enters as a callable ``chance_beyond(target) -> float | None``, asked only when the
population alone would prune (a fit costs tens to hundreds of milliseconds): so the rule is the same for an Optuna
pruner reading a study's storage, a Ray Tune scheduler, or a replay of finished curves.

Pure numpy and scipy: nothing here knows Optuna, Ray, torch or Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from curvecast.forecasting.schedule import DROP_FACTOR
from curvecast.forecasting.trial_path import TrialPath

__all__ = ["PopulationRule", "TrialPath", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """The population rule's answer for one trial at one step.

    Attributes:
        prune: whether to stop the trial now.
        step: the step judged.
        reason: why, in a sentence (also when not pruned).
        chance: the chance the trial ends better than ``best`` (the population's, or its own forecast's when that
            kept it), or None when none was computed.
        best: the value to beat: the best final of the finished trials, or the best value any trial reached.
        peers: the other trials with a value at this step.
        finished: the finished trials the prediction was made from (0 before enough had finished).
    """

    prune: bool
    step: float
    reason: str
    chance: float | None = None
    best: float | None = None
    peers: int = 0
    finished: int = 0


ChanceBeyond = Callable[[float], "float | None"]


@dataclass(frozen=True)
class PopulationRule:
    """When to stop a trial, from the other trials' curves and its own forecast.

    Args:
        mode: ``"min"`` when lower is better, ``"max"`` otherwise.
        confidence: prune when the chance of ending better than the best is at most ``1 - confidence``.
        min_finished: finished trials with a value at the step before their finals are regressed on.
        min_peers: other trials with a value at the step before a trial is judged at all.
        window: the trial's last ``window`` reports make its level (the same steps read on the other curves), so one
            noisy validation neither prunes nor saves it.
        min_spread: the least predictive spread, as a fraction of the finished trials' mean improvement from the
            step to their ends: trials of similar settings can agree closely and a new setting still differ.
        warmup_fraction: no trial is judged before this fraction of its run (when its horizon is known).
    """

    mode: str = "min"
    confidence: float = 0.9
    min_finished: int = 3
    min_peers: int = 1
    window: int = 3
    min_spread: float = 0.1
    warmup_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"Expected `mode` to be one of 'min', 'max', but got {self.mode!r}")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"Expected `confidence` to lie in [0.5, 1), but got {self.confidence}")
        if self.min_finished < 2:
            raise ValueError(f"Expected `min_finished` to be at least 2, but got {self.min_finished}")
        if self.min_peers < 1:
            raise ValueError(f"Expected `min_peers` to be at least 1, but got {self.min_peers}")
        if self.window < 1:
            raise ValueError(f"Expected `window` to be at least 1, but got {self.window}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"Expected `warmup_fraction` to lie in [0, 1), but got {self.warmup_fraction}")

    def judge(
        self,
        own: TrialPath | None,
        peers: Sequence[TrialPath],
        horizon: float | None = None,
        chance_beyond: ChanceBeyond | None = None,
        last_value: float | None = None,
    ) -> Verdict:
        """Judge a trial at its last reported step.

        Args:
            own: the trial's finite reported points (None when it has none).
            peers: the other trials of the sweep (running, stopped and finished), damaged ones already left out.
            horizon: the step the trial is planned to end at, or None when unknown.
            chance_beyond: the trial's own forecast: the chance it ends better than a value, or None when it cannot
                say; None when no forecast can be made.
            last_value: the trial's latest reported value as reported (a NaN or inf is a diverged trial).
        """
        if last_value is not None and not math.isfinite(last_value):
            step = float(own.steps[-1]) if own is not None else math.nan
            return Verdict(True, step, f"its latest value is {last_value}: the trial diverged")
        if own is None:
            return Verdict(False, math.nan, "no finite value reported yet")
        step = float(own.steps[-1])
        if horizon is not None and step < self.warmup_fraction * horizon:
            return Verdict(False, step, "too early in its run")
        at = own.steps[-self.window :]
        log = self._log_space(own, peers)
        x_own = float(np.mean(self._x(own.values[-self.window :], log)))
        # Where the trial is heading: its level over the ``window`` reports before ``at``, as far back again.
        before = own.steps[-2 * self.window : -self.window] if len(own.steps) >= 2 * self.window else None
        trend_own = None
        if before is not None:
            trend_own = x_own - float(np.mean(self._x(own.values[-2 * self.window : -self.window], log)))
        levels, done = [], []
        for peer in peers:
            if peer.steps[0] > at[0] or peer.steps[-1] < at[-1]:
                continue  # the peer has no value at these steps (it started later or stopped earlier)
            level = float(np.mean(self._x(np.interp(at, peer.steps, peer.values), log)))
            levels.append(level)
            if peer.final is not None:
                trend = None
                if trend_own is not None and peer.steps[0] <= before[0]:
                    trend = level - float(np.mean(self._x(np.interp(before, peer.steps, peer.values), log)))
                done.append((level, float(self._x(np.array([peer.final]), log)[0]), peer.log_lr(at), trend))
        n_peers = len(levels)
        if horizon is not None and step >= horizon:
            return Verdict(False, step, "at its end: nothing left to save", peers=n_peers)
        if n_peers < self.min_peers:
            return Verdict(False, step, f"{n_peers} other trials reached this step; {self.min_peers} are needed",
                           peers=n_peers)  # fmt: skip
        blind = self._forecast_blind(own, step, at, log, done)
        if len(done) >= self.min_finished:
            verdict, df = self._by_finals(
                step, x_own, own.log_lr(at), done, levels, peers, log, chance_beyond, trend_own, blind
            )  # fmt: skip
            if verdict.prune or verdict.best is None:
                return verdict
            if x_own <= max(d[0] for d in done) and not self._rank_still_speaks(own, step, x_own, done, df):
                return verdict
            # Behind every finished trial at this step, the trial is outside what their record can speak for (a
            # slope held at 0 predicts it the finished trials' mean); or their record is one degree of freedom (see
            # `_rank_still_speaks`): behind most trials and given up on by its own forecast, it is pruned as before
            # any had finished.
            rank = self._by_rank(step, x_own, levels, peers, log, chance_beyond, verdict.best, blind)
            return rank if rank.prune else verdict
        return self._by_rank(step, x_own, levels, peers, log, chance_beyond, blind=blind)

    def _forecast_blind(
        self, own: TrialPath, step: float, at: np.ndarray, log: bool,
        done: list[tuple[float, float, float | None, float | None]],
    ) -> bool:  # fmt: skip
        """Whether the trial's own forecast cannot see what its planned decay brings it, and may not prune it: its
        planned LR here is above every finished trial's, a decay lies ahead (its LR later halves and is still over
        half its peak so far), and it is not worse now than before (a divergence or an overfit is no noise floor).

        A one-curve forecast sizes a decay's gain from the curve so far, where a high LR's loss sits on a noise floor
        the decay removes: in ``benchmarks/sweeps.py`` (crossing, seeds 0-79) 49 of the 166 trials the rank rule
        pruned in this position then beat the value they were given under 1% to beat; 3 of its 489 other prunes did.
        """
        if own.schedule is None:
            return False
        lr = own.log_lr(at)
        known = [d[2] for d in done if d[2] is not None]
        if lr is None or not known or lr <= max(known):
            return False
        now = int(min(max(step, 0), own.schedule.horizon))
        if not (own.schedule.drop_ahead(now) and own.schedule.fraction_of_peak(now) > DROP_FACTOR):
            return False
        w = len(at)
        if len(own.values) <= w:
            return True
        x = self._x(own.values, log)
        return float(np.mean(x[-w:])) <= float(np.min(x[:-w]))

    @staticmethod
    def _rank_still_speaks(
        own: TrialPath, step: float, x_own: float, done: list[tuple[float, float, float | None, float | None]],
        df: float | None,
    ) -> bool:  # fmt: skip
        """Whether the rule of the early branch (behind most trials, and its own forecast gives it under
        ``rank_tail``) still judges a trial the finished trials keep: while their prediction has one degree of freedom
        (a Cauchy, which gives under 10% only 3.1 scales from the best: three finished trials, with or without their
        LRs, or four with two fitted columns, rarely give up on anything), where the finished trial that ended best
        was ahead of it at this step (so their record does not say that trials behind here end best: in a sweep of
        overfitting runs a slow climber level with the best one is kept), and where no planned decay is still ahead
        of it (the one-curve forecast was seen overconfident before a decay it under-reads: crossing's high LRs)."""
        if df is None or df > 1:
            return False
        if min(done, key=lambda d: d[1])[0] >= x_own:
            return False
        if own.schedule is None:
            return True  # no decay known ahead
        at = int(min(max(step, 0), own.schedule.horizon))
        return not (own.schedule.drop_ahead(at) and own.schedule.fraction_of_peak(at) > DROP_FACTOR)

    # -- the two regimes ------------------------------------------------------------------------------------------

    def _by_finals(
        self,
        step: float,
        x_own: float,
        lr_own: float | None,
        done: list[tuple[float, float, float | None, float | None]],
        levels: list[float],
        peers: Sequence[TrialPath],
        log: bool,
        chance_beyond: ChanceBeyond | None,
        trend_own: float | None = None,
        blind: bool = False,
    ) -> tuple[Verdict, float | None]:
        """Predict the trial's final from the finished trials' finals regressed on their levels at this step (and on
        their planned LR there, when every one involved has a schedule: a higher LR still to decay has more to gain;
        and on their trend into it, the level's change over the ``window`` reports before, when enough finished trials
        reach that far back: at one level, a curve still climbing and one already turning back end apart). With the
        verdict, the prediction's degrees of freedom (None where the finished trials could not speak for the trial)."""
        with_lr = [d for d in done if d[2] is not None]
        # From ``min_finished`` trials on: with as many trials as coefficients, `_predict` holds the level's slope at 1
        # (a gain linear in the LR), which in a sweep whose curves cross says more than the levels alone (crossing's
        # high LRs trail until their decay) and, unlike waiting for one trial more, reaches outside their LRs.
        use_lr = lr_own is not None and len(with_lr) >= self.min_finished
        known = [d[2] for d in with_lr]
        if lr_own is not None and not use_lr and not (known and min(known) <= lr_own <= max(known)):
            # Too few finished trials to read the LR's effect, and this trial's LR is outside theirs: a higher LR
            # trails until its decay, so their record cannot speak for it; only its own forecast can give up on it.
            best_final = self._value(float(np.min([d[1] for d in done])), log)
            return self._by_rank(step, x_own, levels, peers, log, chance_beyond, best_final, blind), None
        rows = with_lr if use_lr else done
        n = len(rows)
        level = np.array([d[0] for d in rows])
        final = np.array([d[1] for d in rows])
        best_x = float(np.min([d[1] for d in done]))
        best = self._value(best_x, log)
        own_row = [x_own - level.mean()]
        columns = [level - level.mean()]
        if use_lr:
            lrs = np.array([d[2] for d in rows])
            columns.append(lrs - lrs.mean())
            own_row.append(lr_own - lrs.mean())
        trends = [d[3] for d in rows]
        use_trend = trend_own is not None and n >= self.min_finished + len(columns) and None not in trends
        if use_trend:
            trend = np.array(trends, dtype=np.float64)
            columns.append(trend - trend.mean())
            own_row.append(trend_own - trend.mean())
        n_peers = len(levels)
        predicted, scale, df = self._predict(np.array(columns).T, final, np.array(own_row))
        gain = abs(float(np.mean(level - final)))
        scale = max(scale, self.min_spread * gain * math.sqrt(1.0 + 1.0 / n), 1e-9 * max(abs(final.mean()), 1.0))
        chance = float(student_t.cdf((best_x - predicted) / scale, df=df))
        said = self._value(predicted, log)
        names = ["levels", *["LRs"] * use_lr, *["trends"] * use_trend]
        which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        if chance > 1.0 - self.confidence:
            return Verdict(False, step, f"the {n} finished trials give it a {chance:.1%} chance to end better than "
                           f"{best:.4g}", chance, best, n_peers, n), df  # fmt: skip
        own = chance_beyond(best) if chance_beyond is not None else None
        if own is not None and math.isfinite(own) and own > 1.0 - self.confidence:
            return Verdict(False, step, f"the finished trials give up on it ({chance:.1%}), but its own forecast "
                           f"gives it {own:.1%} to end better than {best:.4g}", own, best, n_peers, n), df  # fmt: skip
        return Verdict(
            True, step,
            f"from where the {n} finished trials stood at step {step:g} (their {which} there) and where they "
            f"ended, it is predicted to end at {said:.4g}, with a {chance:.1%} chance to end better than the best "
            f"trial's {best:.4g}",
            chance, best, n_peers, n,
        ), df  # fmt: skip

    @staticmethod
    def _predict(columns: np.ndarray, final: np.ndarray, own: np.ndarray) -> tuple[float, float, float]:
        """Least squares of ``final`` on centred ``columns`` (the first: the level at the step) and an intercept: the
        prediction at ``own``, its predictive scale and degrees of freedom.

        The level's slope is held in [0, 1.5]: a negative one (curves that cross) says the level tells nothing, not
        that a worse trial ends better; past 1.5 a handful of trials would extrapolate wildly. Held, it is fixed and
        the other columns are fitted to what it leaves. With no more trials than coefficients the fit leaves no
        residual to size its spread, and the slope is held at 1: each trial ends where it stands plus a gain the
        other columns explain (in log space for a loss, runs improve by like factors), one degree of freedom (a
        Cauchy) where a free slope would say nothing. With a residual to spare the slope is fitted: held at 1 there
        too, it pruned an eventual winner of ``benchmarks/sweeps.py`` (crossing seed 18, a 10.9% regret).

        The residual variance is read from the leave-one-out residuals, each scaled back by its own prediction
        variance (``e_i / (1 - h_i)`` has variance ``sigma^2 / (1 - h_i)``, so ``e_i^2 / (1 - h_i)`` estimates
        ``sigma^2`` whatever the trial's leverage): a fit of a few trials that happen to line up predicts each of them
        left out badly, and so claims no narrow spread. The prediction's own uncertainty then enters once, as
        ``1 + h_0`` and the Student-t's degrees of freedom; the leave-one-out residuals squared as they are would count
        it a second time (about ``1 / (1 - p / n)``: 4x the variance with 4 trials and 3 columns), and their 80%
        intervals covered 88-92% (tests/forecasting).
        """
        n = len(final)
        design = np.column_stack([np.ones(n), columns])
        coef = np.linalg.lstsq(design, final, rcond=None)[0]
        x0 = np.concatenate([[1.0], own])
        target, offset = final, 0.0
        held = n <= design.shape[1]  # no residual left to size a free slope's spread
        if held or not 0.0 <= coef[1] <= 1.5:
            fixed = 1.0 if held else float(np.clip(coef[1], 0.0, 1.5))
            design = np.delete(design, 1, axis=1)
            target = final - fixed * columns[:, 0]
            offset = fixed * own[0]
            x0 = np.delete(x0, 1)
            coef = np.linalg.lstsq(design, target, rcond=None)[0]
        p = design.shape[1]
        if n <= p:
            return float(x0 @ coef) + offset, math.inf, 1.0
        inverse = np.linalg.pinv(design.T @ design)
        hat = np.einsum("ij,jk,ik->i", design, inverse, design)
        residuals = target - design @ coef
        sd = math.sqrt(float(np.mean(residuals**2 / np.maximum(1.0 - hat, 1e-3))))
        leverage = float(x0 @ inverse @ x0)
        # Far outside the finished trials' range the linear fit is a guess: its leverage counts at most 9 (3 spreads).
        return float(x0 @ coef) + offset, sd * math.sqrt(1.0 + min(max(leverage, 0.0), 9.0)), float(n - p)

    @property
    def rank_tail(self) -> float:
        """The chance below which a trial's own forecast prunes it before enough trials finished: a tenth of
        ``1 - confidence``, since a forecast of one curve cannot see the crossings the population would show."""
        return (1.0 - self.confidence) / 10.0

    def _by_rank(
        self,
        step: float,
        x_own: float,
        levels: list[float],
        peers: Sequence[TrialPath],
        log: bool,
        chance_beyond: ChanceBeyond | None,
        best: float | None = None,
        blind: bool = False,
    ) -> Verdict:
        """Behind most trials at this step, and its own forecast ends worse than ``best`` (by default the best value
        any trial has reached); never where that forecast is ``blind`` to its decay (see `_forecast_blind`)."""
        behind = sum(1 for lv in levels if lv < x_own) / len(levels)
        if behind <= 0.5:
            return Verdict(False, step, f"ahead of {1 - behind:.0%} of the {len(levels)} trials at this step",
                           peers=len(levels))  # fmt: skip
        if blind:
            return Verdict(False, step, f"behind {behind:.0%} of the {len(levels)} trials at this step, but its LR is "
                           "above every finished trial's with its decay ahead: its own forecast cannot see what the "
                           "decay brings it", peers=len(levels))  # fmt: skip
        if best is None:
            best = self._value(min(float(self._x(p.values, log).min()) for p in peers), log)
        chance = chance_beyond(best) if chance_beyond is not None else None
        if chance is None or not math.isfinite(chance):
            return Verdict(False, step, f"behind {behind:.0%} of the {len(levels)} trials at this step, with no "
                           "forecast of its own to confirm it", peers=len(levels))  # fmt: skip
        if chance > self.rank_tail:
            return Verdict(False, step, f"behind {behind:.0%} of the trials at this step, but its forecast gives it "
                           f"{chance:.1%} to end better than {best:.4g}", chance, best, len(levels))  # fmt: skip
        return Verdict(
            True, step,
            f"behind {behind:.0%} of the {len(levels)} trials at step {step:g}, and its forecast gives it a "
            f"{chance:.1%} chance to end better than {best:.4g}",
            chance, best, len(levels),
        )  # fmt: skip

    # -- the scale the rule works in: lower is better, a positive loss in logs -----------------------------------

    def _log_space(self, own: TrialPath, peers: Sequence[TrialPath]) -> bool:
        if self.mode != "min":
            return False
        if own.values.min() <= 0:
            return False
        return all(p.values.min() > 0 and (p.final is None or p.final > 0) for p in peers)

    def _x(self, values: np.ndarray, log: bool) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if log:
            return np.log(values)
        return values if self.mode == "min" else -values

    def _value(self, x: float, log: bool) -> float:
        if log:
            return math.exp(x)
        return x if self.mode == "min" else -x
