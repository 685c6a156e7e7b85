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
