"""The arithmetic behind hyperparameter advice: the batch-size trade-off and the Step Law (pure functions).

- McCandlish et al. 2018, "An Empirical Model of Large-Batch Training": steps and examples to reach a given loss at
  batch size B are S = S_min (1 + B_crit / B) and E = E_min (1 + B / B_crit); the simple noise scale B_simple
  estimates B_crit to an order of magnitude.
- Li et al. 2025, "Predictable Scale: Part I" (Step Law), fitted on LLM pretraining: for N non-embedding parameters
  and D training tokens, eta_opt = 1.79 N^-0.713 D^0.307 and B_opt = 0.58 D^0.571 (tokens per step).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curvecast.forecasting.anomalies.stats import MEDIAN_NOISE, sigma_of_diffs

__all__ = [
    "data_factor",
    "improved_past_noise",
    "non_embedding_params",
    "step_law_batch_tokens",
    "step_law_lr",
    "steps_factor",
]


def steps_factor(batch: float, b_crit: float) -> float:
    """S / S_min = 1 + B_crit / B: how many times the minimum number of steps a batch of ``batch`` needs.

    Example::

        >>> steps_factor(10, 100)  # a batch ten times below critical needs 11x the minimum steps
        11.0
    """
    _check_positive(batch=batch, b_crit=b_crit)
    return 1.0 + b_crit / batch


def data_factor(batch: float, b_crit: float) -> float:
    """E / E_min = 1 + B / B_crit: how many times the minimum data (and compute) a batch of ``batch`` uses.

    Example::

        >>> data_factor(1000, 100)
        11.0
    """
    _check_positive(batch=batch, b_crit=b_crit)
    return 1.0 + batch / b_crit


def step_law_lr(n_params: float, tokens: float) -> float:
    """Step Law optimal peak LR: 1.79 N^-0.713 D^0.307 (LLM pretraining with AdamW, Li et al. 2025).

    Example::

        >>> round(step_law_lr(1e9, 1e11), 5)
        0.00163
    """
    _check_positive(n_params=n_params, tokens=tokens)
    return 1.79 * n_params**-0.713 * tokens**0.307


def step_law_batch_tokens(tokens: float) -> float:
    """Step Law optimal batch size in tokens: 0.58 D^0.571 (Li et al. 2025).

    Example::

        >>> round(step_law_batch_tokens(1e11) / 1e6, 2)  # about 1.1M tokens per step for 100B tokens
        1.11
    """
    _check_positive(tokens=tokens)
    return 0.58 * tokens**0.571


def non_embedding_params(module: Any) -> int:
    """Trainable parameters of ``module`` outside its ``torch.nn.Embedding`` layers (the N of scaling laws)."""
    import torch

    embedding = {id(p) for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if p.requires_grad and id(p) not in embedding and id(p) not in seen:  # tied weights count once
            seen.add(id(p))
            total += p.numel()
    return total


def improved_past_noise(values: Any, mode: str = "min", points: int = 9, z: float = 3.0) -> bool:
    """Whether the median of the last ``points`` finite ``values`` is better than that of the first ``points`` (lower
    for ``mode="min"``) by ``z`` noise units of the difference of two such medians, the per-point noise read from the
    first differences (a trend barely moves it). A policy-gradient surrogate scatters about zero however well the
    agent learns: it never did.

    Example::

        >>> rng = np.random.default_rng(0)
        >>> improved_past_noise(0.03 * rng.standard_normal(300))
        False
        >>> improved_past_noise(np.linspace(1.0, 0.5, 300) + 0.03 * rng.standard_normal(300))
        True
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2 * points:
        return False
    sign = 1.0 if mode == "min" else -1.0
    gain = sign * float(np.median(v[:points]) - np.median(v[-points:]))
    noise = sigma_of_diffs(np.diff(v).tolist())
    return gain > z * MEDIAN_NOISE * noise * math.sqrt(2.0 / points)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"Expected `{name}` to be positive, but got {value}")
