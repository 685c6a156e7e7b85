"""Variable projection: for every point of a grid over the nonlinear parameters, solve the linear ones in closed form.

A curve law such as ``L0 + A * t^-alpha - B * LD(t)`` is linear in (L0, A, B) once alpha is fixed. For a whole grid of
alphas at once we form the weighted normal equations (batched, p <= 4 columns), add Gaussian prior rows, and enforce
sign constraints by trying every active set (2^k small solves, k <= 3), keeping the best feasible one. The search is
exhaustive on the grid, so there are no local minima to fall into; a robust (Huber) fit reweights and repeats.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = ["GridFit", "fit_grid", "huber_weights"]


@dataclass(frozen=True)
class GridFit:
    """Solutions over a grid: ``coef[g]`` and ``objective[g]`` (weighted SSE plus prior) for every grid point g."""

    coef: np.ndarray
    objective: np.ndarray

    @property
    def best(self) -> int:
        """Index of the grid point with the lowest objective."""
        return int(np.nanargmin(self.objective))


def fit_grid(
    design: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    nonneg: tuple[int, ...] = (),
    prior: tuple[tuple[int, float, float], ...] = (),
) -> GridFit:
    """Weighted least squares ``min sum w (y - X c)^2 + sum ((c_j - m_j) / sd_j)^2`` over a batch of designs.

    Args:
        design: (G, n, p) design matrices, one per grid point.
        y: (n,) targets.
        w: (n,) non-negative weights (inverse variances).
        nonneg: indices of coefficients constrained to be >= 0.
        prior: Gaussian priors as (index, mean, sd) on single coefficients.
    """
    g, _, p = design.shape
    xw_t = (design * w[None, :, None]).transpose(0, 2, 1)
    # Batched matmul runs on BLAS: 4-15x faster than the same contraction through einsum at these sizes.
    gram = np.matmul(xw_t, design)
    rhs = np.matmul(xw_t, y)
    yy = float(np.sum(w * y * y))
    prior_c = 0.0
    for j, m, sd in prior:
        gram[:, j, j] += 1.0 / sd**2
        rhs[:, j] += m / sd**2
        prior_c += m * m / sd**2
    # A tiny ridge keeps near-collinear columns (e.g. alpha -> 0) solvable; it is far below the data's weight.
    ridge = 1e-10 * np.einsum("gi,ij->gij", np.maximum(np.einsum("gii->gi", gram), 1e-300), np.eye(p))
    best_coef = np.linalg.solve(gram + ridge, rhs[:, :, None])[:, :, 0]
    # Objective of a least-squares solution: y'Wy + prior - c'rhs (normal equations hold on the free set).
    # (rhs indexed as the active-set solves index it: the copy's memory order fixes einsum's order of summation)
    best_obj = yy + prior_c - np.einsum("gi,gi->g", best_coef, rhs[:, list(range(p))])
    # The problem is convex: where the unconstrained solution keeps its signs it is the optimum. Only the other grid
    # points try every active set (most of a grid, typically, is spared the 2^k solves).
    kept = np.isfinite(best_obj)  # a singular system solved to NaN is no solution
    if nonneg:
        kept &= np.all(best_coef[:, list(nonneg)] >= -1e-12, axis=1)
    bad = np.flatnonzero(~kept)
    best_obj[bad], best_coef[bad] = np.inf, 0.0
    if bad.size and nonneg:
        gram_b, rhs_b, ridge_b = gram[bad], rhs[bad], ridge[bad]
        for fixed in _subsets(nonneg)[1:]:
            free = [i for i in range(p) if i not in fixed]
            a = gram_b[:, free][:, :, free] + ridge_b[:, free][:, :, free]
            c_free = np.linalg.solve(a, rhs_b[:, free][:, :, None])[:, :, 0]
            coef = np.zeros((bad.size, p))
            coef[:, free] = c_free
            feasible = np.all(coef[:, list(nonneg)] >= -1e-12, axis=1)
            obj = yy + prior_c - np.einsum("gi,gi->g", c_free, rhs_b[:, free])
            better = feasible & (obj < best_obj[bad])
            best_obj[bad[better]] = obj[better]
            best_coef[bad[better]] = coef[better]
    return GridFit(coef=best_coef, objective=np.maximum(best_obj, 0.0))


def _subsets(indices: tuple[int, ...]) -> list[tuple[int, ...]]:
    """All subsets of the constrained indices, the empty one (unconstrained solve) first."""
    return [s for r in range(len(indices) + 1) for s in itertools.combinations(indices, r)]


def huber_weights(residuals: np.ndarray, scale: np.ndarray, k: float = 2.0) -> np.ndarray:
    """IRLS factors of the Huber loss: 1 inside ``k * scale``, ``k * scale / |r|`` outside (a spike counts linearly)."""
    a = np.abs(residuals) / np.maximum(scale, 1e-300)
    return np.where(a <= k, 1.0, k / np.maximum(a, 1e-300))
