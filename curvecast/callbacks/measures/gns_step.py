"""The arithmetic of one optimizer step of the gradient noise scale: the step's gradient norm, and the small- and
big-batch squared norms that the two-batch estimator takes (``gns_estimator.py``), knowing no Trainer.

On a CPU it runs on Python floats (reading a scalar waits for nothing there: two ops where tensors take four); on an
accelerator on device tensors, with no host sync.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import torch

from curvecast.callbacks.measures.gradient_tensors import host_squared_norms, squared_norms, total_norm

__all__ = ["BatchPair", "small_batch_sq", "step_norm", "two_batch_pair"]

# The small batch's mean squared norm, the big batch's squared norm, and their batch sizes.
BatchPair = tuple["torch.Tensor | float", "torch.Tensor | float", int, int]


def step_norm(
    grads: Sequence[torch.Tensor], on_host: bool, per_parameter: bool
) -> tuple[torch.Tensor | float, torch.Tensor | list[float] | None]:
    """The step's total gradient norm and, when ``per_parameter`` (a sampled step), the squared norm of each
    gradient (the estimate needs the share of the layers its source covers): floats on the host, tensors on a
    device."""
    if on_host:
        sq = host_squared_norms(grads)
        return math.sqrt(sum(sq)), (sq if per_parameter else None)
    if per_parameter:
        sq_t = squared_norms(grads)
        return sq_t.sum().sqrt(), sq_t
    return total_norm(grads), None


def small_batch_sq(
    micro: Any, per_example: Any, rows: int | None, accumulate: int, scale: torch.Tensor | None, on_host: bool
) -> tuple[torch.Tensor | float, int] | None:
    """One micro-batch's small-batch squared norm from the source's hooks (``micro``, else ``per_example``; the
    source's hooks are switched off), with the number of small batches it sums; None where the source gave none.

    Args:
        rows: the micro-batch's rows (what the per-example source checks its norms against), or None.
        accumulate: Lightning divides each micro-batch's loss by it: the hooks see gradients over it.
        scale: the fp16 AMP loss scale to undo, or None.
    """
    k2 = float(accumulate) ** 2
    total: torch.Tensor | None = None
    if micro is not None:
        micro.enabled = False
        total, factor, count = micro.take(), k2, 1
    elif per_example is not None:
        per_example.enabled = False
        norms = per_example.take(rows)
        if norms is not None:
            n = norms.shape[0]
            # the loss averages over the batch: a per-example loss gradient is B x its share of the batch's
            total, factor, count = norms.sum(dtype=torch.float64), k2 * n * n, n
    if total is None:
        return None
    value = float(total) * factor if on_host else total * factor
    if scale is not None:  # fp16 AMP: undo the loss scale
        scale_sq = scale.to(torch.float64).square()
        value = value / float(scale_sq) if on_host else value / scale_sq.to(value.device)
    return value, count


def two_batch_pair(
    sq: torch.Tensor | list[float],
    params: Sequence[torch.nn.Parameter],
    rows: Sequence[int],
    small_mean: torch.Tensor | float,
    covered: Collection[int] | None,
    world: int,
    on_host: bool,
    accumulate: int = 1,
) -> BatchPair | None:
    """The two batch sizes and squared norms of a sampled step, or None where it cannot be used.

    Args:
        sq: the squared norm of the gradient of each of ``params``.
        rows: the rows of each micro-batch of the step (unequal ones break the two-batch identity: a short last
            batch is skipped).
        small_mean: the mean squared norm of the small batches, from the source's hooks.
        covered: the ids of the parameters the per-example source covers (B_small = 1, and the big batch's norm
            over those alone); None for the micro-batch source (B_small = the micro-batch's rows).
        world: the data-parallel world size (the big batch spans every rank's micro-batches).
        accumulate: Lightning's ``accumulate_grad_batches`` under automatic optimization (1 otherwise): each
            micro-batch's loss is divided by it, so the gradients are the micro-batches' sum over it, and on a step of
            fewer micro-batches (an epoch's last, short accumulation) that sum is scaled back to their mean.
    """
    if not rows or len(set(rows)) > 1:
        return None
    if covered is not None:
        picked = [i for i, p in enumerate(params) if id(p) in covered]
        if not picked:
            return None
        big_sq = sum(sq[i] for i in picked) if on_host else sq[picked].sum()
        b_small = 1
    else:
        big_sq = sum(sq) if on_host else sq.sum()
        b_small = rows[0]
    if accumulate > 1 and len(rows) != accumulate:
        big_sq = big_sq * (accumulate / len(rows)) ** 2
    b_big = rows[0] * len(rows) * world
    if b_big <= b_small:
        return None
    return small_mean, big_sq, b_small, b_big
