"""Baseline final-loss forecasters for benchmarks/forecast_accuracy.py, written independently of curvecast's fitter.

Each baseline takes (steps, values, horizon, lrs or None) of a prefix and returns the forecast at the horizon:
- ``last``: the mean of the last few observed points;
- ``powerlaw``: ``a + b * t^-c`` fitted with ``scipy.optimize.curve_fit``;
- ``tissue``: the LR-annealing law of Tissue et al. 2024, ``L0 + A * S1^-alpha - C * S2`` (lambda = 0.999), fitted
  freely (C >= 0, no prior): alpha on a grid, the linear parameters by NNLS on relative errors;
- ``domhan``: Domhan et al. 2015's 11 families, each fitted with ``curve_fit``, weighted by their error on a
  held-back tail (the last 20 % of the prefix) and refitted on the whole prefix;
- ``mpl``: the Multi-Power Law fitted per run, all 7 parameters: (C, beta, gamma, alpha) on a grid, (L0, A, B) >= 0
  by NNLS on relative errors.
Without an LR schedule the schedule-aware laws see a constant LR (S1 = t, no annealing).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, nnls
from scipy.signal import lfilter

__all__ = ["BASELINES"]

_MAX_POINTS = 200  # the prefix is averaged into at most this many bins before the slower baselines fit it


def _bin(t: np.ndarray, y: np.ndarray, n: int = _MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    if len(t) <= n:
        return t, y
    edges = np.linspace(t[0], t[-1], n + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n - 1)
    cnt = np.bincount(which, minlength=n)
    ok = cnt > 0
    return (np.bincount(which, t, n)[ok] / cnt[ok], np.bincount(which, y, n)[ok] / cnt[ok])


def _skip_transient(t: np.ndarray, y: np.ndarray, frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    keep = t >= t[0] + frac * (t[-1] - t[0])
    return (t[keep], y[keep]) if keep.sum() >= 5 else (t, y)


def last_value(t, y, horizon, lrs):
    k = int(np.clip(len(y) // 20, 1, 50))
    return float(np.mean(y[-k:]))


def powerlaw(t, y, horizon, lrs):
    t, y = _skip_transient(*_bin(t, y))
    f = lambda x, a, b, c: a + b * np.maximum(x, 1.0) ** -c
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            p, _ = curve_fit(
                f,
                t,
                y,
                p0=(0.9 * y.min(), y[0] - 0.9 * y.min() + 1e-6, 0.5),
                bounds=([0, 0, 0.01], [np.inf, np.inf, 3]),
                maxfev=5000,
            )
        return float(f(horizon, *p))
    except (RuntimeError, ValueError):
        return last_value(t, y, horizon, lrs)


def _areas(lrs, horizon):
    u = np.ones(horizon + 1) if lrs is None else np.asarray(lrs, float) / max(np.max(lrs), 1e-300)
    return u, np.cumsum(u)


def tissue(t, y, horizon, lrs, lam: float = 0.999):
    """Free fit: alpha on a grid, (L0, A, C) >= 0 by NNLS on relative errors (no prior on C)."""
    t, y = _skip_transient(*_bin(t, y))
    u, cum = _areas(lrs, horizon)
    dec = np.r_[0.0, u[:-1] - u[1:]]
    s2 = np.cumsum(lfilter([1.0], [1.0, -lam], dec))  # m_i = lam * m_(i-1) + (u_(i-1) - u_i)
    ti = np.clip(np.round(np.r_[t, horizon]).astype(int), 0, horizon)
    s1 = (cum[ti] + 1.0) / (cum[ti[-2]] + 1.0)
    w = 1.0 / y
    best = (np.inf, float(y[-1]))
    for al in np.geomspace(0.05, 3.0, 60):
        x = np.stack([np.ones_like(s1), s1**-al, -s2[ti]], axis=1)
        coef, rn = nnls(x[:-1] * w[:, None], y * w)
        if rn < best[0]:
            best = (rn, float(x[-1] @ coef))
    return best[1]


def _mpl_ld(u, cum, ti, horizon, c, beta, gamma, chunks: int = 256):
    peak = int(np.argmax(u))
    d = u[peak:-1] - u[peak + 1 :]
    idx = np.arange(peak + 1, len(u))
    nz = d != 0
    d, idx = d[nz], idx[nz]
    if d.size == 0:
        return np.zeros(len(ti))
    parts = np.array_split(np.arange(d.size), min(chunks, d.size))
    dk = np.array([d[p].sum() for p in parts])
    kk = np.array([int(np.round(np.average(idx[p], weights=np.abs(d[p]) + 1e-300))) for p in parts])
    sk = cum[ti][:, None] - cum[kk - 1][None, :]
    sk = np.where(ti[:, None] >= kk[None, :], np.maximum(sk, 0), 0)
    x = np.maximum(u[kk], 1e-6)[None, :] ** -gamma * sk
    return (1 - (c * x + 1) ** -beta) @ dk


def mpl(t, y, horizon, lrs):
    """All 7 MPL parameters per run: (C, beta, gamma, alpha) on a grid, (L0, A, B) >= 0 by NNLS, relative errors."""
    t, y = _skip_transient(*_bin(t, y))
    u, cum = _areas(lrs, horizon)
    ti = np.clip(np.round(np.r_[t, horizon]).astype(int), 0, horizon)
    s1 = cum[ti] + cum[int(np.argmax(u))] + 1.0
    s1 = s1 / s1[-2]
    w = 1.0 / y
    best = (np.inf, float(y[-1]))
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):
        for beta in (0.3, 0.6, 1.0):
            for gamma in (0.3, 0.65):
                ld = _mpl_ld(u, cum, ti, horizon, c, beta, gamma)
                for al in np.geomspace(0.05, 3.0, 24):
                    x = np.stack([np.ones_like(s1), s1**-al, -ld], axis=1)
                    coef, rn = nnls(x[:-1] * w[:, None], y * w)
                    if rn < best[0]:
                        best = (rn, float(x[-1] @ coef))
    return best[1]


# Domhan et al. 2015 families, written for a falling loss: y = c - g(x) with g from the accuracy form.
_FAMILIES = {
    "vap": (lambda x, a, b, c: np.exp(a + b / x + c * np.log(x)), (0.0, 0.0, 0.0)),
    "pow3": (lambda x, c, a, al: c + a * x**-al, None),
    "loglog_linear": (lambda x, a, b: np.log(np.maximum(a * np.log(x) + b, 1e-9)), (-0.1, 2.0)),
    "hill3": (lambda x, th, eta, k: th - th * x**eta / (k**eta + x**eta), None),
    "log_power": (lambda x, a, b, c: a / (1 + (x / np.exp(b)) ** c), None),
    "pow4": (lambda x, c, a, b, al: c + (a * x + b) ** -al, None),
    "mmf": (lambda x, al, be, k, de: al - (al - be) / (1 + (k * x) ** de), None),
    "exp4": (lambda x, c, a, b, al: c + np.exp(-a * x**al + b), None),
    "janoschek": (lambda x, al, be, k, de: al - (al - be) * np.exp(-k * x**de), None),
    "weibull": (lambda x, al, be, k, de: al - (al - be) * np.exp(-((k * x) ** de)), None),
    "ilog2": (lambda x, c, a: c + a / np.log(x + 1), None),
}


def _p0(name, y):
    lo, hi = float(y.min()), float(y[0])
    return {
        "pow3": (0.9 * lo, hi - 0.9 * lo, 0.5),
        "hill3": (hi, -1.0, 0.5),
        "log_power": (hi, 0.0, 0.5),
        "pow4": (0.9 * lo, 1.0, 1.0, 0.5),
        "mmf": (0.9 * lo, hi, 2.0, 1.0),
        "exp4": (0.9 * lo, 2.0, np.log(max(hi - lo, 1e-6)), 1.0),
        "janoschek": (0.9 * lo, hi, 1.0, 1.0),
        "weibull": (0.9 * lo, hi, 1.0, 1.0),
        "ilog2": (0.9 * lo, hi - lo),
    }.get(name, _FAMILIES[name][1])


def _fit_family(name, x, y):
    f = _FAMILIES[name][0]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        p, _ = curve_fit(f, x, y, p0=_p0(name, y), maxfev=2000)
    return lambda q: f(q, *p)


def domhan(t, y, horizon, lrs, holdout: float = 0.2):
    t, y = _skip_transient(*_bin(t, y))
    ref = t[-1]  # Domhan's x counts epochs from 1; steps are scaled so the prefix spans (0, 1]
    x, xh = t / ref, horizon / ref
    cut = int(len(x) * (1 - holdout))
    preds, errs = [], []
    for name in _FAMILIES:
        try:
            part = _fit_family(name, x[:cut], y[:cut])
            err = float(np.sqrt(np.mean((part(x[cut:]) / y[cut:] - 1) ** 2)))
            full = _fit_family(name, x, y)
            p = float(full(xh))
        except (RuntimeError, ValueError, TypeError, FloatingPointError):
            continue
        if np.isfinite(err) and np.isfinite(p) and 0 < p < 10 * y.max():
            preds.append(p)
            errs.append(max(err, 1e-6))
    if not preds:
        return last_value(t, y, horizon, lrs)
    w = 1 / np.square(errs)
    return float(np.dot(w, preds) / w.sum())


BASELINES = {"last": last_value, "powerlaw": powerlaw, "tissue": tissue, "domhan": domhan, "mpl": mpl}
