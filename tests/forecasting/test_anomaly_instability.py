"""InstabilityMonitor: the early warning from loss and gradient norm together, and its state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curvecast.forecasting.anomalies import AnomalyDetector, InstabilityMonitor

N = 1200


def streams(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    loss = (2.0 + 6.0 / (1 + t / 50)) * np.exp(0.02 * rng.standard_normal(N))
    grad = 0.8 * np.exp(0.1 * rng.standard_normal(N))
    return loss, grad


def feed(mon: InstabilityMonitor, loss: np.ndarray, grad: np.ndarray, start: int = 0) -> list:
    out = []
    for s in range(start, len(loss)):
        out += mon.update(s, loss=float(loss[s]), grad_norm=float(grad[s]))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_streams_give_no_warning(seed: int) -> None:
    loss, grad = streams(seed)
    events = feed(InstabilityMonitor(), loss, grad)
    assert [e for e in events if e.kind in ("instability_risk", "divergence")] == []


def test_co_spike_warns_at_the_loss_spike() -> None:
    loss, grad = streams()
    grad[700] *= 20.0  # the gradient norm leads the loss by a step (BLOOM)
    loss[701] *= 1.8
    events = feed(InstabilityMonitor(), loss, grad)
    got = [(e.kind, e.series, e.step) for e in events if e.kind != "plateau"]
    assert got == [("spike", "grad_norm", 700), ("spike", "loss", 701), ("instability_risk", "loss", 701)]
    assert "spiked together" in events[-1].message


def test_grad_growth_with_creeping_loss_warns_before_divergence() -> None:
    loss, grad = streams()
    t = np.arange(N)
    grad = grad * np.exp(np.clip(t - 600, 0, None) * 0.01)  # norms grow before the blow-up
    loss = loss * np.exp(np.clip(t - 800, 0, None) * 0.01)
    events = feed(InstabilityMonitor(), loss, grad)
    risk = [e for e in events if e.kind == "instability_risk"]
    div = [e for e in events if e.kind == "divergence"]
    assert risk
    assert div
    assert risk[0].step <= div[0].step


def test_single_series_spikes_alone_do_not_warn() -> None:
    loss, grad = streams()
    loss[500] *= 2.0
    grad[900] *= 20.0
    events = feed(InstabilityMonitor(), loss, grad)
    assert sorted((e.kind, e.series) for e in events if e.kind != "plateau") == [
        ("spike", "grad_norm"),
        ("spike", "loss"),
    ]


def test_state_round_trip() -> None:
    loss, grad = streams()
    grad[700] *= 20.0
    loss[701] *= 1.8
    ref = feed(InstabilityMonitor(), loss, grad)
    first = InstabilityMonitor()
    head = [e for s in range(650) for e in first.update(s, loss=float(loss[s]), grad_norm=float(grad[s]))]
    second = InstabilityMonitor()
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert head + feed(second, loss, grad, start=650) == ref


def test_bad_input() -> None:
    mon = InstabilityMonitor()
    mon.update(3, loss=1.0)
    with pytest.raises(ValueError, match="`step` must increase, but step 2 follows 3"):
        mon.update(2, loss=1.0)
    with pytest.raises(TypeError, match="Expected `value` to be a real number"):
        mon.update(4, grad_norm="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`grad_growth` must be > 1"):
        InstabilityMonitor(grad_growth=1.0)


def test_wraps_given_detectors() -> None:
    loss_det = AnomalyDetector("train/loss", kinds=("nonfinite",))
    mon = InstabilityMonitor(loss_detector=loss_det)
    assert mon.update(0, loss=float("nan"))[0].series == "train/loss"


def sparse_feed(mon: InstabilityMonitor, loss: list[float], every: int = 1000) -> list:
    return [e for i, v in enumerate(loss) for e in mon.update(1 + i * every, loss=v) if e.kind == "instability_risk"]


def test_turn_up_on_a_sparse_curve_warns_before_the_blow_up() -> None:
    # An evaluation every 1000 steps: the loss falls, turns up 5% from its best, then 26%, then blows up. One point
    # back up is no turn-up (a single batch above a smooth fall is a spike: it recovers at the next point): the
    # warning comes with the second, before the blow-up (step 8001).
    loss = [6.9, 5.0, 3.8, 3.0, 2.6, 2.45, 2.57, 3.1, 4.7]
    risk = sparse_feed(InstabilityMonitor(), loss)
    assert [e.step for e in risk] == [7001]
    assert "turned up to 3.1 from 2.45" in risk[0].message


def test_slow_creep_on_a_flat_sparse_curve_warns_before_the_blow_up() -> None:
    rng = np.random.default_rng(0)
    flat = list(2.4 * np.exp(0.005 * rng.standard_normal(14)))
    loss = [9.0, 5.0, 3.2, 2.7, *flat, 2.45, 2.5, 2.56, 2.57, 2.6, 2.9, 3.5]  # creeps up under +10%
    risk = sparse_feed(InstabilityMonitor(), loss)
    blow = next(i for i, v in enumerate(loss) if i >= 2 and v >= 1.1 * min(loss[:i]))
    assert risk
    assert risk[0].step < 1 + blow * 1000


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clean_noisy_descent_gives_no_turn_up(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(3000)
    per_step = (2.0 + 8.0 / (1 + t / 30)) * np.exp(0.05 * rng.standard_normal(len(t)))
    mon = InstabilityMonitor()
    events = [e for s, v in enumerate(per_step) for e in mon.update(s, loss=float(v))]
    assert [e for e in events if e.kind == "instability_risk"] == []
    sparse = list((2.0 + 8.0 / (1 + np.arange(40) / 3)) * np.exp(0.004 * rng.standard_normal(40)))
    assert sparse_feed(InstabilityMonitor(), sparse) == []


def test_early_bump_of_a_per_step_loss_is_no_turn_up() -> None:
    loss = [10.8, 10.1, 8.4, 7.6, 7.5, 6.96, 7.2, 6.75, 6.6, 6.5] + [6.4 - 0.01 * i for i in range(50)]
    mon = InstabilityMonitor()
    assert [e for s, v in enumerate(loss) for e in mon.update(s + 1, loss=v) if e.kind == "instability_risk"] == []


def test_state_missing_keys_is_refused() -> None:
    mon = InstabilityMonitor()
    for s, v in enumerate([6.9, 5.0, 3.8, 3.0]):
        mon.update(1 + 1000 * s, loss=v)
    state = mon.state_dict()
    del state["lows"]
    with pytest.raises(KeyError, match="lacks the instability monitor keys"):
        InstabilityMonitor().load_state_dict(json.loads(json.dumps(state)))


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_norm_jitter_is_no_spike(seed: int) -> None:
    """A smooth gradient norm whose single steps move 1.03-1.45x: noise, not spikes (a spike is 1.5x or more)."""
    loss, _ = streams(seed)
    rng = np.random.default_rng(seed + 10)
    grad = 0.8 * np.exp(0.01 * rng.standard_normal(N))
    at = rng.choice(np.arange(100, N - 5), 12, replace=False)
    grad[at] *= np.linspace(1.03, 1.45, 12)
    events = feed(InstabilityMonitor(), loss, grad)
    assert [e for e in events if e.series == "grad_norm"] == []
