"""Curve families as plain functions: each maps steps and a grid of nonlinear parameters to linear design columns.

Every family is ``value = c0 + c1 * f(t; theta) [- c2 * LD(t)]`` with a decreasing ``f``; c1 >= 0 (the curve falls
as training goes on) and c0 >= 0 for positive metrics. The nonlinear ``theta`` lives on a bounded grid that
``varpro.fit_grid`` searches exhaustively. Steps are divided by a reference step (the last observed one) so every
column is O(1) whatever the run length.

Schedule-free families follow Domhan et al. 2015, written for a falling loss: pow3 ``t^-alpha``, pow4
``(t + t0)^-alpha``, Janoschek/Weibull ``exp(-(t/kappa)^delta)`` (exp3 at delta = 1) and log-power / MMF
``1 / (1 + (t/kappa)^delta)``. The schedule-aware family is the Multi-Power Law (see ``schedule.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from curvecast.forecasting.calibration import MPL_ALPHA, MPL_ALPHA_SD
from curvecast.forecasting.schedule import LRSchedule
from curvecast.forecasting.varpro import CrossedDesign

__all__ = [
    "MPL_ALPHA",
    "MPL_SHAPES",
    "Family",
    "loglog_family",
    "mpl_family",
    "mpl_shaped_family",
    "pow3",
    "schedule_free_families",
]

# The MPL exponent alpha has a log-normal prior (``calibration.py``): a short prefix alone often picks a steep alpha
# whose curve flattens too early, or a tiny one that extrapolates the early transient far past the truth.
ALPHAS = np.geomspace(0.05, 3.0, 48)  # power-law exponents: Kaplan's 0.076 to Domhan's steep early curves
_KAPPAS = np.geomspace(0.05, 20.0, 24)  # time constants, in units of the last observed step
_DELTAS = np.array([0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
_OFFSETS = np.array([0.0, 0.03, 0.1, 0.3, 1.0])  # pow4 time offsets t0, in units of the last observed step


@dataclass(frozen=True)
class Family:
    """A curve family: ``columns(t, grid)`` gives the (G, n, p) design for steps ``t`` at every grid point (dense, or
    a :class:`~curvecast.forecasting.varpro.CrossedDesign` where the grid crosses axes that own separate columns)."""

    name: str
    grid: np.ndarray
    columns: Callable[[np.ndarray, np.ndarray], np.ndarray | CrossedDesign]
    nonneg: tuple[int, ...]
    anneal_index: int | None = None  # the coefficient of the annealing column, when there is one
    penalty: np.ndarray | float = 0.0  # a log-prior over the grid, in the objective's (chi-square) units

    def predict(self, t: np.ndarray, theta: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """Curve values at steps ``t`` for one grid point ``theta`` and its linear coefficients ``coef``."""
        return self.columns(np.asarray(t, dtype=np.float64), theta[None, :])[0] @ coef


def _stack(t: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Design (G, n, 2) with columns [1, f] from f of shape (G, n)."""
    return np.stack([np.ones_like(f), f], axis=-1)


def pow3(t: np.ndarray, grid: np.ndarray, t_ref: float) -> np.ndarray:
    """Columns [1, (t/t_ref)^-alpha] for alphas ``grid[:, 0]``."""
    x = np.maximum(t / t_ref, 1e-6)
    return _stack(t, x[None, :] ** -grid[:, :1])


def _pow4(t: np.ndarray, grid: np.ndarray, t_ref: float) -> np.ndarray:
    x = np.maximum(t / t_ref, 1e-6)[None, :] + grid[:, 1:2]
    return _stack(t, np.maximum(x, 1e-6) ** -grid[:, :1])


def _janoschek(t: np.ndarray, grid: np.ndarray, t_ref: float) -> np.ndarray:
    x = np.maximum(t / t_ref, 0.0)[None, :] / grid[:, :1]
    return _stack(t, np.exp(-(x ** grid[:, 1:2])))


def _log_power(t: np.ndarray, grid: np.ndarray, t_ref: float) -> np.ndarray:
    x = np.maximum(t / t_ref, 0.0)[None, :] / grid[:, :1]
    return _stack(t, 1.0 / (1.0 + x ** grid[:, 1:2]))


def _loglog(t: np.ndarray, grid: np.ndarray, t_ref: float) -> np.ndarray:
    """Columns [1, log(1 - k log(t/t_ref))]: Domhan's log-log-linear law, whose fall speeds up in log time."""
    lx = np.log(np.maximum(t / t_ref, 1e-6))[None, :]
    return _stack(t, np.log(np.maximum(1.0 - grid[:, :1] * lx, 1e-6)))


def _grid(*axes: np.ndarray) -> np.ndarray:
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def schedule_free_families(t_ref: float, positive: bool) -> list[Family]:
    """The Domhan-style families for a falling metric, steps scaled by ``t_ref``."""
    nonneg = (0, 1) if positive else (1,)
    return [
        Family("pow3", _grid(ALPHAS), partial(pow3, t_ref=t_ref), nonneg),
        Family("pow4", _grid(ALPHAS[::2], _OFFSETS[1:]), partial(_pow4, t_ref=t_ref), nonneg),
        Family("janoschek", _grid(_KAPPAS, _DELTAS), partial(_janoschek, t_ref=t_ref), nonneg),
        Family("logpower", _grid(_KAPPAS, _DELTAS), partial(_log_power, t_ref=t_ref), nonneg),
    ]


def loglog_family(t_ref: float, positive: bool) -> Family:
    """Domhan's log-log-linear family ``c0 + c1 log(1 - k log(t / t_ref))``, k on a grid (it ends in a cliff)."""
    nonneg = (0, 1) if positive else (1,)
    return Family("loglog", _grid(np.geomspace(0.01, 3.0, 32)), partial(_loglog, t_ref=t_ref), nonneg)


def mpl_family(
    schedule: LRSchedule,
    s1_ref: float,
    positive: bool,
    anneal: LRSchedule | None = None,
    shape: tuple[float, float, float] | None = None,
) -> Family:
    """Multi-Power Law with fixed shape constants: columns [1, (S1/S1_ref)^-alpha, -LD(t)], B = c2 >= 0.

    ``anneal``: the schedule whose drops drive LD when not ``schedule`` itself (a response not linear in the LR);
    ``shape``: the response's (C, beta, gamma) when not the defaults of ``schedule.py``.
    """
    anneal = schedule if anneal is None else anneal
    columns = partial(_mpl_columns, schedule=schedule, s1_ref=s1_ref, anneal=anneal, shape=shape)
    nonneg = (0, 1, 2) if positive else (1, 2)
    penalty = ((np.log(ALPHAS / MPL_ALPHA)) / MPL_ALPHA_SD) ** 2 if MPL_ALPHA_SD > 0 else 0.0
    return Family("mpl", _grid(ALPHAS), columns, nonneg, anneal_index=2, penalty=penalty)


MPL_SHAPES = _grid(np.array([0.03, 0.1, 0.3, 1.0, 3.0]), np.array([0.3, 0.6, 1.0]), np.array([0.3, 0.65]))


def mpl_shaped_family(schedule: LRSchedule, s1_ref: float, positive: bool) -> Family:
    """Multi-Power Law with its shape constants (C, beta, gamma) on the grid too, and no prior on B or alpha.

    It joins once a good part of the LR drop is observed: the data then size the drop, its response and the exponent
    on their own, and the priors that keep a short prefix from wild fits would only pull it.
    """
    alphas = ALPHAS[::2]
    grid = np.concatenate([np.repeat(alphas, len(MPL_SHAPES))[:, None], np.tile(MPL_SHAPES, (len(alphas), 1))], 1)

    nonneg = (0, 1, 2) if positive else (1, 2)
    return Family("mpl-shaped", grid, partial(_mpl_shaped_columns, schedule=schedule, s1_ref=s1_ref), nonneg)


# The design functions are module-level (bound with functools.partial) so that a fitted Forecast pickles.
def _mpl_columns(
    t: np.ndarray,
    grid: np.ndarray,
    schedule: LRSchedule,
    s1_ref: float,
    anneal: LRSchedule,
    shape: tuple[float, float, float] | None,
) -> np.ndarray:
    x = schedule.s1(t) / s1_ref
    f = x[None, :] ** -grid[:, :1]
    ld = anneal.anneal(t) if shape is None else anneal.anneal(t, shape=shape)
    return np.stack([np.ones_like(f), f, np.broadcast_to(-ld[None, :], f.shape)], axis=-1)


def _mpl_shaped_columns(t: np.ndarray, g: np.ndarray, schedule: LRSchedule, s1_ref: float) -> CrossedDesign:
    """The grid crosses exponents with response shapes: each column is one of a few distinct ones (a CrossedDesign:
    for the 720 grid points, 24 power columns and 30 annealing columns)."""
    x = schedule.s1(t) / s1_ref
    alphas, which_alpha = np.unique(g[:, 0], return_inverse=True)
    shapes, which_shape = np.unique(g[:, 1:], axis=0, return_inverse=True)
    ld = schedule.anneal_shapes(t, [tuple(s) for s in shapes])
    tables = [np.ones((1, len(x))), x[None, :] ** -alphas[:, None], -ld]
    return CrossedDesign(tables, [np.zeros(len(g), dtype=np.intp), which_alpha.ravel(), which_shape.ravel()])
