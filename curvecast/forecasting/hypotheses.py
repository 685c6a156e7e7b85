"""Which curve families compete in a forecast: the hypotheses about how the rest of the run will go.

With the planned LR schedule: the Multi-Power Law with its annealing prior and, once part of the LR drop has been
observed, prior-free variants whose annealing response is linear in the LR or bent (``u^p``) and one with fitted shape
constants; with a planned LR that stays constant, Domhan's constant-LR families beside the MPL (which is then a plain
power law). Without a schedule: the Domhan-style constant-LR families (only the power law for prefixes of at most a
fifth of the run), for mid-run prefixes a cosine-to-zero MPL hypothesis, and from 40 % of the run on the log-log-linear
law. Each candidate is then weighted by how well it forecasts the held-back tail of the observed curve
(``holdout_weights``; ``ensemble_weights`` turns them into the ensemble's weights for ``forecaster.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from curvecast.forecasting.calibration import (
    CLIFF_RATIO,
    COSINE_REACH,
    FLAT_MOVING_SHARE,
    FLAT_STALLED_WEIGHT,
    FLAT_WEIGHT,
    LOGLOG_FROM,
    LONG_REACH,
    REFERENCE_WEIGHT,
    SEEN_DROP,
    SEEN_SHAPE,
    SHORT_TAIL,
    SPREAD_POWER,
    WEIGHT_FLOOR,
    WEIGHT_POWER,
    WEIGHT_POWER_UNPLANNED,
)
from curvecast.forecasting.curves import (
    Family,
    loglog_family,
    mpl_family,
    mpl_shaped_family,
    schedule_free_families,
)
from curvecast.forecasting.fit_context import FitContext
from curvecast.forecasting.fit_diagnostics import Member
from curvecast.forecasting.preprocess import Binned
from curvecast.forecasting.schedule import LRSchedule

__all__ = [
    "ensemble_weights",
    "COSINE_REACH",
    "LOGLOG_FROM",
    "LONG_REACH",
    "RESPONSE_POWERS",
    "SEEN_SHAPE",
    "WEIGHT_POWER",
    "WEIGHT_POWER_UNPLANNED",
    "candidate_families",
    "holdout_weights",
    "prior_weights",
    "spread_alternatives",
    "stalled_flat_weighed",
    "without_cliffs",
]

# Prior-free members whose annealing response follows u^p (u = LR / peak) instead of u: the loss of many vision and
# graph runs keeps falling steeply as the LR nears zero, more than a drop linear in the LR allows (AlgoPerf ViT,
# OGBG); on the held-back tail they compete with the linear response and lose where it is right (LLM cooldowns).
# They join with the other prior-free members and get a say only when they beat every plain member.
RESPONSE_POWERS = (0.5, 0.25)
# A planned schedule whose LR drops, net, by less than this share of its peak after the window starts is constant.
FLAT_SCHEDULE = 1e-3
CONSTANT_LR_FAMILIES = frozenset({"pow3", "pow4", "janoschek", "logpower", "loglog"})
COSINE_KNOTS = 256


def candidate_families(
    data: Binned, schedule: LRSchedule | None, cut: float, t_obs: float, horizon: int, positive: bool
) -> tuple[list[Family], LRSchedule | None]:
    """The families to fit on ``data`` (held back after ``cut``), and the schedule their columns assume."""
    t_last = float(data.steps[-1])
    if schedule is not None:
        s1_ref = float(schedule.s1(np.array([t_last]))[0])
        mpl = mpl_family(schedule, s1_ref, positive)
        families = [mpl]
        drop_in_window = schedule.total_drop_after(float(data.steps[0]))
        if drop_in_window <= FLAT_SCHEDULE:
            # A planned LR that stays put (most Lightning runs without a scheduler) leaves the MPL a plain power law
            # in the steps: Domhan's constant-LR families are as planned as it, and compete on the held-back tail.
            return families + _constant_lr_families(t_obs, horizon, t_last, positive), schedule
        # Once part of the planned LR drop is behind us, the data can size the annealing response on its own
        # (vision runs anneal far more than the LLM prior says): prior-free members, with a linear and bent
        # response to the LR, compete on the held-back tail. Before that they would only dilute the prior.
        seen = drop_in_window - schedule.total_drop_after(cut)
        total = max(drop_in_window, 1e-12)
        if seen >= SEEN_DROP * total:
            families.append(replace(mpl, name="mpl-free", anneal_index=None))
            for power in RESPONSE_POWERS:
                fam = mpl_family(schedule, s1_ref, positive, anneal=schedule.response(power))
                families.append(replace(fam, name=f"mpl-bent{power:g}", anneal_index=None))
        # Once a quarter of the drop shows anywhere in the window, the data can also size how fast the loss
        # responds to it: an MPL with its shape constants on the grid competes (its held-back error can only equal
        # a plain prior-free member's when the decay falls wholly in the held-back tail, so it then shares weight).
        observed = drop_in_window - schedule.total_drop_after(t_last)
        if observed >= SEEN_SHAPE * total:
            families.append(mpl_shaped_family(schedule, s1_ref, positive))
        return families, schedule
    families = _constant_lr_families(t_obs, horizon, t_last, positive)
    if COSINE_REACH[0] <= t_obs / max(horizon, 1) <= COSINE_REACH[1]:
        # Most recipes anneal the LR to about zero by the planned end: a cosine-to-zero hypothesis competes with the
        # constant-LR families on the held-back tail.
        # In COSINE_KNOTS linear pieces (off the cosine by < 1e-5 of the peak): the cost does not grow with the
        # horizon, and no per-step array is built for a schedule nobody gave.
        knots = np.unique(np.linspace(0, horizon, COSINE_KNOTS + 1).round().astype(np.int64))
        guess = LRSchedule.from_knots(knots, 0.5 * (1.0 + np.cos(np.pi * knots / horizon)) + 1e-3)
        cos_fam = mpl_family(guess, float(guess.s1(np.array([t_last]))[0]), positive)
        families.append(replace(cos_fam, name="mpl-cosine-guess"))
        schedule = guess
    return families, schedule


def _constant_lr_families(t_obs: float, horizon: int, t_last: float, positive: bool) -> list[Family]:
    """Domhan's families for a run whose LR does not change (or is not known to), by how far the horizon lies."""
    families = schedule_free_families(max(t_last, 1.0), positive)
    if horizon >= LONG_REACH * max(t_obs, 1.0):
        # Far from the horizon the held-back tail spans a sliver of the log-steps still to come: the families fit it
        # alike and differ only in how they bend past it, which the tail cannot judge. The plain power law is the
        # hypothesis that bends least arbitrarily.
        families = [f for f in families if f.name == "pow3"]
    if t_obs / max(horizon, 1) >= LOGLOG_FROM:
        families.append(loglog_family(max(t_last, 1.0), positive))
    return families


def holdout_weights(names: list[str], errors: np.ndarray, planned: bool) -> np.ndarray:
    """Unnormalised ensemble weights of the members from their held-back errors (``planned``: schedule given).

    Domhan's constant-LR families are weighed as sharply with a planned constant LR as without a schedule: they bend
    apart past the tail, so a member that fits the tail worse must lose its say fast (with a soft power the
    log-log-linear law kept a fifth of the weight on a noisy tiny run, and its cliff made a forecast one step ahead
    "too uncertain").
    """
    errors = np.maximum(np.asarray(errors, dtype=np.float64), 1e-12)
    sharp = _sharply_weighed(names, planned)
    weights = (errors.min() / errors) ** (WEIGHT_POWER_UNPLANNED if sharp else WEIGHT_POWER)
    weights[weights < WEIGHT_FLOOR] = 0.0
    return weights * prior_weights(names, errors)


def _sharply_weighed(names: list[str], planned: bool) -> bool:
    """Whether the members are weighed with the sharp power: without a schedule, or with a constant LR's families."""
    return not planned or bool(CONSTANT_LR_FAMILIES & set(names))


def prior_weights(names: list[str], errors: np.ndarray) -> np.ndarray:
    """Prior factors on the members' ensemble weights, given their held-back errors.

    A bent response differs from the linear one mostly where the LR nears zero, past the held-back tail: it gets a
    say only when it forecasts that tail better than every plain member (on LLM cooldowns it does not). The
    reference member knows the rest of the run from finished runs of the recipe, which the tail cannot show: it gets
    ``REFERENCE_WEIGHT`` times the weight its held-back error alone would give.
    """
    names = list(names)
    plain = [e for n, e in zip(names, errors, strict=True) if not n.startswith("mpl-bent")]
    best_plain = min(plain) if plain else np.inf
    out = np.ones(len(names))
    for i, (n, e) in enumerate(zip(names, errors, strict=True)):
        if n.startswith("mpl-bent") and e >= best_plain:
            out[i] = 0.0
        elif n == "reference":
            out[i] = REFERENCE_WEIGHT
        elif n == "flat":
            out[i] = FLAT_WEIGHT
    return out


def without_cliffs(
    members: Sequence[Callable[[np.ndarray], np.ndarray]],
    weights: np.ndarray,
    first: float,
    last: float,
    horizon: float,
) -> np.ndarray | None:
    """``weights`` (summing to 1 again) with no say left to a law whose fall speeds up past the data: one that falls
    faster in log-log between the ``last`` step and the ``horizon`` than ``CLIFF_RATIO`` times it fell from the
    ``first`` step of its window to the last (a Janoschek curve whose time constant lies past the data). For a
    curve that has stalled: learning curves slow down in log-log. The flat and reference members and the cosine
    hypothesis (whose drop is the coming LR decay) keep theirs. None when nothing keeps a say.
    """
    if not (first > 0 and last > first and horizon > last):
        return weights
    out = np.array(weights, dtype=np.float64)
    for i, member in enumerate(members):
        if out[i] == 0 or getattr(member, "name", "") in ("flat", "reference", "mpl-cosine-guess"):
            continue
        y0, y1, yh = (float(v) for v in member(np.array([first, last, horizon])))
        if not (y0 > 0 and y1 > 0 and yh > 0):
            continue
        seen = max(math.log(y0 / y1), 0.0) / math.log(last / first)
        ahead = math.log(y1 / yh) / math.log(horizon / last)
        if ahead > CLIFF_RATIO * seen + 1e-3:
            out[i] = 0.0
    return out / out.sum() if out.sum() > 0 else None


def _alive(fit: FitContext, fits: list[Member], errors: list[float]) -> np.ndarray:
    """Which members may have a say: those that stay positive at the horizon with a finite held-back error."""
    at_h = np.array([float(fit.horizon)])
    finals = np.array([float(f(at_h)[0]) for f in fits])
    return np.isfinite(finals) & (finals > 0) & np.isfinite(errors)  # ending at or below zero: no say


def stalled_flat_weighed(fits: Sequence[Member], weights: np.ndarray) -> np.ndarray:
    """``weights`` (summing to 1 again) with the flat member's multiplied by ``FLAT_STALLED_WEIGHT``: a curve whose
    latest half shows no fall clear of its noise is not learning, and the flat hypothesis gets the weight its prior
    gives a stalled curve."""
    flat = [i for i, f in enumerate(fits) if getattr(f, "name", "") == "flat"]
    out = np.array(weights, dtype=np.float64)
    out[flat] *= FLAT_STALLED_WEIGHT
    return out / out.sum()


def ensemble_weights(fit: FitContext, fits: list[Member], errors: list[float]) -> np.ndarray | None:
    """The members' weights from their held-back errors, summing to 1 (0 for a member that does not stay positive
    at the horizon); None when no member has a say."""
    alive = _alive(fit, fits, errors)
    if not alive.any():
        return None
    weights = np.zeros(len(fits))
    errs = np.maximum(np.asarray(errors)[alive], 1e-6)
    weights[alive] = holdout_weights([f.name for f, a in zip(fits, alive, strict=True) if a], errs, fit.known)
    if not weights.sum() > 0:
        return None
    weights /= weights.sum()
    return weights


def flat_share_capped(fit: FitContext, fits: list[Member], errors: list[float], weights: np.ndarray) -> np.ndarray:
    """``weights`` with the flat member's share held to ``FLAT_MOVING_SHARE`` and the rest weighed among the laws
    alone, for a curve with a planned schedule that has not stalled (its later half moves clear of its noise): a few
    held-back points at one level are a pause there, not the end of learning. A validation accuracy that rose
    0.45 -> 0.55 over 10 epochs and held 0.55 for three was forecast flat at 0.5547 (80%: 0.545 .. 0.567) for 450 more
    steps; it ended at 0.59."""
    flat = [i for i, f in enumerate(fits) if getattr(f, "name", "") == "flat"]
    if not flat or not weights[flat[0]] > FLAT_MOVING_SHARE:
        return weights
    i = flat[0]
    laws = [j for j in range(len(fits)) if j != i]
    rest = ensemble_weights(fit, [fits[j] for j in laws], [errors[j] for j in laws])
    if rest is None:
        return weights
    capped = np.zeros(len(fits))
    capped[i] = FLAT_MOVING_SHARE
    capped[laws] = (1.0 - FLAT_MOVING_SHARE) * rest
    return capped


def spread_alternatives(
    fit: FitContext, fits: list[Member], errors: list[float]
) -> tuple[tuple[float, Member], ...] | None:
    """The members weighed by (best held-back error / their own)^``SPREAD_POWER``, no floor, for the interval's
    spread alone, where a short held-back tail (``SHORT_TAIL`` points) weighs them sharply (no schedule, a constant
    LR): two members that happen to forecast three held-back points within 0.1% get the whole say, and the spread
    collapses with it. A classifier's validation accuracy at a constant LR, 10 points in (step 320 of 960), was
    forecast 0.579 with an 80% interval of 0.570 .. 0.591 (a chance of 0 of 0.606); it ended at 0.611, and the
    interval is 0.537 .. 0.617 now (a chance of 0.19). None elsewhere (the spread is the ensemble's)."""
    names = [getattr(f, "name", "") for f in fits]
    if not _sharply_weighed(names, fit.known) or int((fit.data.steps > fit.cut).sum()) > SHORT_TAIL:
        return None
    alive = _alive(fit, fits, errors)
    if not alive.any():
        return None
    errs = np.maximum(np.asarray(errors, dtype=np.float64), 1e-12)
    alike = np.where(alive, errs[alive].min() / np.where(alive, errs, 1.0), 0.0) ** SPREAD_POWER
    if not alike.sum() > 0:
        return None
    alike /= alike.sum()
    if fit.stalled:  # as for the point forecast
        alike = stalled_flat_weighed(fits, alike)
    return tuple((w, f) for w, f in zip(alike, fits, strict=True) if w > 0)
