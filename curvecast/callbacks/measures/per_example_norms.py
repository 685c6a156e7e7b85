"""Per-example squared gradient norms of Linear, Embedding, LayerNorm and RMSNorm layers, without per-example gradients.

Each formula takes the layer input ``a`` and the gradient ``g`` of the loss with respect to the layer output, both
batch-first, and returns a ``(B,)`` tensor: the squared norm, summed over the layer's trainable parameters, of the
gradient that example's share of the loss contributes. With a loss that is a mean over the batch, multiply by ``B**2``
to get the norm of the per-example loss's gradient. The costs are those of a few reductions over ``a`` and ``g``, far
below materialising per-example gradients (B copies of every weight), except for long sequences, where the cheaper of
two exact forms is picked per layer.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "embedding_sq_norms",
    "module_sq_norms",
    "supported_params",
    "layer_norm_sq_norms",
    "linear_sq_norms",
    "rms_norm_sq_norms",
]

# Temporaries of a chunk stay under this many elements (256 MiB in float32).
_CHUNK_ELEMENTS = 1 << 26
# Up to this sequence length an Embedding's norms come from a T x T product, beyond it from sorting the ids.
_EMBEDDING_GHOST_MAX_T = 128


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    # half inputs are summed in float32; float64 stays float64 (the ground-truth tests run in it)
    return torch.promote_types(t.dtype, torch.float32)


def _as_sequence(t: torch.Tensor) -> torch.Tensor:
    """(B, ..., F) -> (B, T, F), T being the product of the middle dimensions (1 for a 2-D input)."""
    return t.reshape(t.shape[0], -1, t.shape[-1])


def linear_sq_norms(a: torch.Tensor, g: torch.Tensor, weight: bool = True, bias: bool = True) -> torch.Tensor:
    """Per-example squared norms of a Linear layer's weight (and bias) gradient.

    2-D input: ``|g_i|^2 |a_i|^2`` (Goodfellow 2015), bias ``|g_i|^2``. Sequence input (B, T, I): the weight gradient of
    example i is ``G_i^T A_i``; its squared norm is either ``<A_i A_i^T, G_i G_i^T>`` ("ghost norm", 2 T^2 (I+O) flops)
    or formed outright (2 T I O flops), whichever costs less; bias ``|sum_t g_t|^2``.
    """
    dtype = _work_dtype(g)
    a3, g3 = _as_sequence(a).to(dtype), _as_sequence(g).to(dtype)
    batch, steps, n_in = a3.shape
    n_out = g3.shape[-1]
    out = torch.zeros(batch, dtype=dtype, device=g.device)
    if bias:
        out += g3.sum(dim=1).square().sum(dim=1)
    if not weight:
        return out
    if steps == 1:
        return out + g3[:, 0].square().sum(dim=1) * a3[:, 0].square().sum(dim=1)
    ghost = steps * (n_in + n_out) <= n_in * n_out
    per_example = steps * steps if ghost else n_in * n_out
    chunk = max(1, _CHUNK_ELEMENTS // max(per_example, 1))
    parts = []
    for start in range(0, batch, chunk):
        ac, gc = a3[start : start + chunk], g3[start : start + chunk]
        if ghost:
            parts.append((torch.bmm(ac, ac.transpose(1, 2)) * torch.bmm(gc, gc.transpose(1, 2))).sum(dim=(1, 2)))
        else:
            parts.append(torch.bmm(gc.transpose(1, 2), ac).square().sum(dim=(1, 2)))
    return out + torch.cat(parts)


def embedding_sq_norms(
    ids: torch.Tensor, g: torch.Tensor, num_embeddings: int, padding_idx: int | None = None
) -> torch.Tensor:
    """Per-example squared norms of an Embedding's weight gradient: ``sum_v |sum_{t: x_t = v} g_t|^2``.

    Rows of repeated ids are summed before squaring: for short sequences through the T x T matrix of equal ids, for
    long ones by sorting keys ``(example, id)`` and summing runs of equal keys; both keep every shape fixed, so unlike
    ``torch.unique`` they never wait for the device.
    """
    dtype = _work_dtype(g)
    batch = ids.shape[0]
    ids2 = ids.reshape(batch, -1).long()
    rows = g.reshape(batch, ids2.shape[1], -1).to(dtype)
    if padding_idx is not None:
        rows = rows * (ids2 != padding_idx).unsqueeze(-1).to(dtype)  # the padding row gets no gradient
    if ids2.shape[1] == 1:
        return rows[:, 0].square().sum(dim=1)
    if ids2.shape[1] <= _EMBEDDING_GHOST_MAX_T:
        # short sequences: sum_{t,t'} [x_t = x_t'] g_t . g_t' with one batched matmul beats sorting (B T^2 D flops)
        same = (ids2.unsqueeze(2) == ids2.unsqueeze(1)).to(dtype)
        return (torch.bmm(rows, rows.transpose(1, 2)) * same).sum(dim=(1, 2))
    span = int(num_embeddings)
    keys = (torch.arange(batch, device=ids.device).unsqueeze(1) * span + ids2).reshape(-1)
    keys, order = torch.sort(keys)
    starts = torch.ones_like(keys, dtype=torch.bool)
    starts[1:] = keys[1:] != keys[:-1]
    run = torch.cumsum(starts.long(), 0) - 1  # run index of every sorted position
    sums = torch.zeros(keys.numel(), rows.shape[-1], dtype=dtype, device=g.device)
    sums.index_add_(0, run, rows.reshape(-1, rows.shape[-1])[order])
    example = torch.zeros(keys.numel(), dtype=torch.long, device=g.device)
    example[run] = keys // span
    out = torch.zeros(batch, dtype=dtype, device=g.device)
    return out.index_add_(0, example, sums.square().sum(dim=1))


def _norm_sq(x_hat: torch.Tensor, g: torch.Tensor, n_norm_dims: int, weight: bool, bias: bool) -> torch.Tensor:
    batch = g.shape[0]
    feat = g.shape[g.dim() - n_norm_dims :].numel()
    g3 = g.reshape(batch, -1, feat)
    out = torch.zeros(batch, dtype=g3.dtype, device=g.device)
    if weight:
        # per-example gain gradient sum_t g_t * x_hat_t as one batched contraction over t
        gain = torch.einsum("btf,btf->bf", g3, x_hat.reshape(batch, -1, feat))
        out += torch.linalg.vector_norm(gain, dim=1).square()
    if bias:
        out += torch.linalg.vector_norm(g3.sum(dim=1), dim=1).square()
    return out


def layer_norm_sq_norms(
    x: torch.Tensor, g: torch.Tensor, normalized_shape: tuple[int, ...], eps: float, weight: bool, bias: bool
) -> torch.Tensor:
    """Per-example squared norms of LayerNorm's gain and bias gradients: ``|sum_t g_t * x_hat_t|^2 + |sum_t g_t|^2``.

    ``x_hat`` is recomputed from the saved input (one pass over it).
    """
    dtype = _work_dtype(g)
    x_hat = nn.functional.layer_norm(x.to(dtype), normalized_shape, eps=eps)  # one fused pass, no affine
    return _norm_sq(x_hat, g.to(dtype), len(normalized_shape), weight, bias)


def rms_norm_sq_norms(
    x: torch.Tensor, g: torch.Tensor, normalized_shape: tuple[int, ...], eps: float | None, weight: bool
) -> torch.Tensor:
    """Per-example squared norm of RMSNorm's gain gradient: ``|sum_t g_t * x_t / rms(x_t)|^2``."""
    dtype = _work_dtype(g)
    dims = tuple(range(x.dim() - len(normalized_shape), x.dim()))
    xf = x.to(dtype)
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    x_hat = xf * torch.rsqrt(xf.square().mean(dim=dims, keepdim=True) + eps)
    return _norm_sq(x_hat, g.to(dtype), len(normalized_shape), weight, False)


def module_sq_norms(module: nn.Module, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor | None:
    """Dispatch on the layer type; None for a layer without a formula here."""
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    w = isinstance(weight, torch.Tensor) and weight.requires_grad
    b = isinstance(bias, torch.Tensor) and bias.requires_grad
    if isinstance(module, nn.Linear):
        return linear_sq_norms(a, g, weight=w, bias=b)
    if isinstance(module, nn.Embedding):
        return embedding_sq_norms(a, g, module.num_embeddings, module.padding_idx)
    if isinstance(module, nn.LayerNorm):
        return layer_norm_sq_norms(a, g, tuple(module.normalized_shape), module.eps, w, b)
    rms_norm = getattr(nn, "RMSNorm", None)
    if rms_norm is not None and isinstance(module, rms_norm):
        return rms_norm_sq_norms(a, g, tuple(module.normalized_shape), module.eps, w)
    return None


def supported_params(module: nn.Module) -> list[nn.Parameter] | None:
    """The trainable parameters a formula covers, or None when the layer type is not supported."""
    if isinstance(module, nn.Embedding):
        if module.sparse or module.max_norm is not None:
            return None  # sparse gradients; max_norm rewrites the weight during forward
    elif not isinstance(module, (nn.Linear, nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))):
        return None
    params = [p for p in module.parameters(recurse=False) if p.requires_grad]
    return params or None
