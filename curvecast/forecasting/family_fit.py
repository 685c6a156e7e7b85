"""One curve family fitted to a curve's bins: robust variable projection over the family's grid, with a prior on the
annealing coefficient of a schedule-aware law and that coefficient's posterior spread.

The weights are relative (a log-space fit): each bin's noise plus a misfit floor, refined from the residuals, and two
Huber reweightings on top so that a spike counts linearly; a law that follows a planned schedule weighs the later
bins more (``calibration.RECENCY``, ``RECENCY_NOISY`` on a noisy curve: the early transient bends away from the law
the forecast extends).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curvecast.forecasting.calibration import (
    ANNEAL_CAP,
    ANNEAL_FLOOR,
    ANNEAL_KAPPA,
    NOISY_FROM,
    RECENCY,
    RECENCY_NOISY,
)
from curvecast.forecasting.curves import Family
from curvecast.forecasting.preprocess import Binned
from curvecast.forecasting.schedule import LRSchedule
from curvecast.forecasting.varpro import fit_grid, huber_weights

__all__ = ["AnnealPrior", "FittedFamily", "fit_family", "is_noisy"]

# The MPL laws without recency weights: the guessed cosine (no schedule was given) and the one whose response shape
# is on the grid too.
_UNPLANNED_MPL = ("mpl-cosine-guess", "mpl-shaped")


class FittedFamily:
    """One family fitted on a set of bins: best grid point, coefficients, and the annealing effect's posterior sd."""

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


def is_noisy(data: Binned) -> bool:
    """Whether the curve's logged points scatter by more than ``NOISY_FROM`` (relative): a per-batch loss. With a
    planned schedule such a curve weighs its later points more (``RECENCY_NOISY``) and has its interval sized apart."""
    return data.noise > NOISY_FROM


@dataclass(frozen=True)
class AnnealPrior:
    """The prior on the annealing coefficient: its mean grows with the curve's log-log ``slope`` (at least ``floor``
    times the ``level``, at most ``ANNEAL_CAP``), its sd a share ``relative_sd`` of the mean."""

    floor: float  # the smallest drop, as a share of the level
    relative_sd: float
    level: float  # the curve's recent level: the prior's unit
    slope: float

    def on(self, index: int) -> tuple[tuple[int, float, float], ...]:
        mean = max(self.floor * ANNEAL_FLOOR, min(ANNEAL_KAPPA * self.slope, ANNEAL_CAP)) * self.level
        return ((index, mean, max(self.relative_sd * mean, 1e-9 * self.level)),)


def fit_family(
    fam: Family, data: Binned, design: np.ndarray, prior: AnnealPrior, laws: LRSchedule | None
) -> FittedFamily:
    """Robust variable-projection fit of ``fam`` on its ``design`` at ``data``'s steps: two Huber reweightings on top
    of the noise weights. ``laws``: the schedule the family's columns assume (the planned one or a guess)."""
    t, y, c = data.steps, data.values, data.counts
    level = prior.level
    priors = prior.on(fam.anneal_index) if fam.anneal_index is not None else ()
    # Errors are relative: point noise plus a misfit floor, both relative, the floor starting at 0.2 % and refined
    # from the residuals.
    scale = np.maximum(np.abs(y), 1e-12 * abs(level))
    noise2 = data.noise**2 / c
    mis = 2e-3
    robust = np.ones_like(y)
    planned = fam.name.startswith("mpl") and fam.name not in _UNPLANNED_MPL
    recency = (t / t[-1]) ** (RECENCY_NOISY if is_noisy(data) else RECENCY) if planned else 1.0
    for _ in range(3):
        var = scale**2 * (noise2 + mis**2)
        res = fit_grid(design, y, robust * recency / var, fam.nonneg, priors, penalty=fam.penalty)
        g = int(np.nanargmin(res.objective + fam.penalty))
        r = (y - design[g] @ res.coef[g]) / scale
        mis = max(float(np.sqrt(max(np.median(r**2) * 2.2 - np.median(noise2), 0.0))), 1e-5)
        robust = huber_weights(r, np.sqrt(noise2 + mis**2))
    anneal_sd = 0.0
    if fam.anneal_index is not None:
        var = scale**2 * (noise2 + mis**2)
        x = design[g]
        gram = (x * (robust / var)[:, None]).T @ x
        j, _, sd = priors[0]
        gram[j, j] += 1.0 / sd**2
        try:
            anneal_sd = float(np.sqrt(max(np.linalg.inv(gram)[j, j], 0.0)))
        except np.linalg.LinAlgError:
            anneal_sd = sd
        # The remaining annealing effect, not the coefficient, is what the horizon forecast is unsure of.
        if laws is not None:
            ld = laws.anneal(np.array([t[-1], laws.horizon]))
            anneal_sd *= max(ld[1] - ld[0], 0.0)
    return FittedFamily(fam, fam.grid[g], res.coef[g], anneal_sd)
