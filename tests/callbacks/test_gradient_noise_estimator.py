"""The two-batch estimator: exact algebra at B_small = 1, unbiasedness, ratio of EMAs, skipped steps, state."""

from __future__ import annotations

import math

import pytest
import torch

from curvecast.callbacks.measures.gns_estimator import GNSEstimator, two_batch_estimates


def _gaussian_gradients(n: int, gen: torch.Generator, dim: int = 50, sigma2: float = 0.5) -> torch.Tensor:
    """Per-example gradients G + sigma z with |G|^2 = 1 and tr(Sigma) = dim * sigma2 (= 25): B_simple = 25."""
    mean = torch.zeros(dim, dtype=torch.float64)
    mean[0] = 1.0
    return mean + math.sqrt(sigma2) * torch.randn(n, dim, generator=gen, dtype=torch.float64)


def test_per_example_estimates_are_the_unbiased_sample_covariance():
    x = _gaussian_gradients(16, torch.Generator().manual_seed(0))
    small = x.square().sum(dim=1).mean()
    big = x.mean(dim=0).square().sum()
    g2, s = two_batch_estimates(small, big, 1, 16)
    torch.testing.assert_close(s, torch.trace(torch.cov(x.T, correction=1)), rtol=1e-12, atol=0)
    torch.testing.assert_close(g2, big - s / 16, rtol=1e-12, atol=0)


def test_estimates_are_unbiased_over_many_draws():
    """Micro-batch style: B_small = 4 (the mean of 4 sub-batches' squared norms), B_big = 16."""
    gen = torch.Generator().manual_seed(1)
    draws = 4000
    x = _gaussian_gradients(draws * 16, gen).reshape(draws, 4, 4, -1)
    small = x.mean(dim=2).square().sum(dim=-1).mean(dim=1)
    big = x.reshape(draws, 16, -1).mean(dim=1).square().sum(dim=-1)
    g2, s = two_batch_estimates(small, big, 4, 16)
    for estimate, truth in ((g2, 1.0), (s, 25.0)):
        se = estimate.std() / math.sqrt(draws)
        assert abs(float(estimate.mean()) - truth) < 4 * float(se)


def test_ratio_of_emas_is_right_where_an_ema_of_ratios_is_biased():
    gen = torch.Generator().manual_seed(2)
    est = GNSEstimator(beta=0.995, min_updates=1)
    ema_of_ratio, weight = 0.0, 0.0
    for _ in range(3000):
        x = _gaussian_gradients(16, gen)
        small = x.reshape(4, 4, -1).mean(dim=1).square().sum(dim=-1).mean()
        big = x.mean(dim=0).square().sum()
        est.update(small, big, 4, 16)
        g2, s = two_batch_estimates(float(small), float(big), 4, 16)
        ema_of_ratio = 0.995 * ema_of_ratio + 0.005 * s / g2
        weight = 0.995 * weight + 0.005
    assert est.read().b_simple == pytest.approx(25.0, rel=0.1)
    assert ema_of_ratio / weight > 1.5 * 25.0  # the biased alternative: a regression guard


def test_non_finite_steps_leave_the_state_unchanged():
    est = GNSEstimator(min_updates=1)
    est.update(torch.tensor(3.0), torch.tensor(1.5), 1, 4)
    before = est.read()
    est.update(torch.tensor(float("inf")), torch.tensor(1.0), 1, 4)
    est.update(torch.tensor(2.0), torch.tensor(float("nan")), 1, 4)
    assert est.read() == before
    assert before.grad_sq_norm == pytest.approx(1.0)
    assert before.trace_cov == pytest.approx(2.0)
    assert before.b_simple == pytest.approx(2.0)


def test_b_simple_waits_for_warm_up_and_a_positive_signal():
    est = GNSEstimator(min_updates=3)
    assert est.read().b_simple is None
    for _ in range(2):
        est.update(torch.tensor(3.0), torch.tensor(1.5), 1, 4)
    assert est.read().b_simple is None
    est.update(torch.tensor(3.0), torch.tensor(1.5), 1, 4)
    assert est.read().b_simple == pytest.approx(2.0)
    noisy = GNSEstimator(min_updates=1)
    noisy.update(torch.tensor(3.0), torch.tensor(0.5), 1, 4)  # |G|^2_est < 0: noise swamps the signal
    assert noisy.read().grad_sq_norm < 0
    assert noisy.read().b_simple is None


def test_state_round_trip_plain_types():
    est = GNSEstimator(min_updates=1)
    est.update(torch.tensor(3.0), torch.tensor(1.5), 1, 4)
    state = est.state_dict()
    assert all(type(v) is float for v in state["state"])
    copy = GNSEstimator(min_updates=1)
    copy.load_state_dict(state)
    assert copy.read() == est.read()
    copy.update(torch.tensor(3.0), torch.tensor(1.5), 1, 4)
    assert copy.read().updates == 2


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`beta` to be in"):
        GNSEstimator(beta=1.0)
    with pytest.raises(ValueError, match="`min_updates` to be a positive int"):
        GNSEstimator(min_updates=0)
    with pytest.raises(ValueError, match="`b_big` > `b_small` > 0"):
        two_batch_estimates(1.0, 1.0, 4, 4)
    with pytest.raises(ValueError, match="version"):
        GNSEstimator().load_state_dict({"version": 2, "state": []})
    with pytest.raises(ValueError, match="4 numbers"):
        GNSEstimator().load_state_dict({"version": 1, "state": [1.0]})
