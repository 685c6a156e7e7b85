"""Each per-layer per-example norm formula against exact per-example gradients (torch.func, float64)."""

from __future__ import annotations

import pytest
import torch
from gns_helpers import SeqModel, per_example_grads, per_example_sq_norms, seq_data, seq_loss
from torch import nn

from curvecast.callbacks.measures.gns_sources import MicroBatchNorms, PerExampleNorms
from curvecast.callbacks.measures.per_example_norms import (
    embedding_sq_norms,
    layer_norm_sq_norms,
    linear_sq_norms,
    module_sq_norms,
    rms_norm_sq_norms,
)


@pytest.fixture(autouse=True)
def _float64():
    """The ground truth is float64; restore the default afterwards for the other test modules."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _layer_truth(layer: nn.Module, x: torch.Tensor, seed: int = 1):
    """Per-example squared norms of ``sum(w * layer(x_i))`` for a fixed random ``w``, and the output gradient."""
    gen = torch.Generator().manual_seed(seed)
    out = layer(x)
    w = torch.randn(out.shape, generator=gen)
    grads = per_example_grads(layer, lambda o, i: (o * w[i]).sum(), x, torch.arange(x.shape[0]))
    return per_example_sq_norms(grads), w  # d(sum w*out)/d out = w


@pytest.mark.parametrize("shape", [(6, 4), (6, 5, 4), (6, 2, 3, 4)], ids=["2d", "seq", "4d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_exact(shape, bias):
    torch.manual_seed(0)
    layer = nn.Linear(4, 3, bias=bias)
    x = torch.randn(*shape)
    truth, g = _layer_truth(layer, x)
    torch.testing.assert_close(linear_sq_norms(x, g, bias=bias), truth, rtol=1e-10, atol=1e-12)


def test_linear_materialised_branch_matches_exact():
    # T (I + O) > I O picks the materialised form; T = 20 with I = O = 2
    torch.manual_seed(0)
    layer = nn.Linear(2, 2)
    x = torch.randn(3, 20, 2)
    truth, g = _layer_truth(layer, x)
    torch.testing.assert_close(linear_sq_norms(x, g), truth, rtol=1e-10, atol=1e-12)


def test_linear_frozen_weight_counts_only_bias():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    layer.weight.requires_grad_(False)
    x = torch.randn(5, 4)
    g = torch.randn(5, 3)
    torch.testing.assert_close(module_sq_norms(layer, x, g), g.square().sum(dim=1))


@pytest.mark.parametrize("ghost_max_t", [128, 1], ids=["ghost", "sorted"])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_matches_exact_with_repeated_ids(padding_idx, ghost_max_t, monkeypatch):
    monkeypatch.setattr("curvecast.callbacks.measures.per_example_norms._EMBEDDING_GHOST_MAX_T", ghost_max_t)
    torch.manual_seed(0)
    layer = nn.Embedding(5, 3, padding_idx=padding_idx)
    ids = torch.tensor([[1, 1, 2, 0], [0, 0, 0, 4], [3, 2, 3, 3]])  # repeats inside an example must add first
    truth, g = _layer_truth(layer, ids)
    torch.testing.assert_close(embedding_sq_norms(ids, g, 5, padding_idx), truth, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 6), (4, 3, 6)], ids=["2d", "seq"])
def test_layer_norm_matches_exact(shape):
    torch.manual_seed(0)
    layer = nn.LayerNorm(6)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    x = torch.randn(*shape) * 2 + 1
    truth, g = _layer_truth(layer, x)
    torch.testing.assert_close(layer_norm_sq_norms(x, g, (6,), layer.eps, True, True), truth, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not hasattr(nn, "RMSNorm"), reason="nn.RMSNorm needs torch >= 2.4")
def test_rms_norm_matches_exact():
    torch.manual_seed(0)
    layer = nn.RMSNorm(6, eps=1e-6)
    x = torch.randn(4, 3, 6)
    truth, g = _layer_truth(layer, x)
    torch.testing.assert_close(rms_norm_sq_norms(x, g, (6,), 1e-6, True), truth, rtol=1e-10, atol=1e-12)


def test_hooks_on_a_whole_model_match_exact():
    """Module hooks over Embedding -> LayerNorm -> Linear (3-D) -> Linear (2-D), scaled by B^2 for the mean loss."""
    torch.manual_seed(0)
    model = SeqModel()
    ids, y = seq_data(8)
    norms = PerExampleNorms(model)
    norms.attach()
    norms.enabled = True
    norms.start_micro_batch()
    seq_loss(model(ids), y).backward()
    got = norms.take() * ids.shape[0] ** 2
    norms.enabled = False
    truth = per_example_sq_norms(per_example_grads(model, seq_loss, ids, y))
    torch.testing.assert_close(got, truth, rtol=1e-10, atol=1e-14)
    assert {id(p) for p in norms.params} == {id(p) for p in model.parameters()}
    norms.detach()


def test_layer_called_twice_is_left_out_with_a_warning():
    layer = nn.Linear(3, 3)
    other = nn.Linear(3, 1)
    model = nn.Sequential(layer, other)
    norms = PerExampleNorms(model)
    norms.attach()
    norms.enabled = True
    norms.start_micro_batch()
    x = torch.randn(4, 3)
    with pytest.warns(UserWarning, match="more than once"):
        other(layer(layer(x))).sum().backward()
    assert norms.take() is None  # this micro-batch is unusable
    assert {id(p) for p in norms.params} == {id(p) for p in other.parameters()}


def test_microbatch_hooks_see_each_backward_separately():
    torch.manual_seed(0)
    model = SeqModel()
    ids, y = seq_data(8)
    hooks = MicroBatchNorms(list(model.parameters()))
    hooks.attach()
    hooks.enabled = True
    seq_loss(model(ids[:4]), y[:4]).backward()
    first = hooks.take()
    grads = [p.grad.clone() for p in model.parameters()]
    seq_loss(model(ids[4:]), y[4:]).backward()  # accumulates into .grad; the hook sees only this pass
    second = hooks.take()
    torch.testing.assert_close(first, sum(g.square().sum() for g in grads))
    second_truth = sum((p.grad - g).square().sum() for p, g in zip(model.parameters(), grads, strict=True))
    torch.testing.assert_close(second, second_truth)
    hooks.detach()
