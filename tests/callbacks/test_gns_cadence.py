"""SampleCadence: the noise scale's samples spaced by their measured cost; in a real Trainer on one CPU."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
from gns_helpers import make_module

from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.measures import gns_cadence
from curvecast.callbacks.measures.gns_cadence import MAX_SPACING, SampleCadence
from run_helpers import tiny_trainer


def sample_run(cadence: SampleCadence, steps: int, period: float, cost: float) -> list[int]:
    """The steps ``cadence`` samples in ``steps`` steps of ``period`` seconds, each sample costing ``cost`` more."""
    sampled, now = [], 0.0
    for step in range(steps):
        if cadence.due(step):
            sampled.append(step)
            cadence.sampled(step, now, cost)
            now += cost
        now += period
    return sampled


def test_the_default_spacing_while_warming_up_and_while_the_samples_are_cheap():
    cadence = SampleCadence(10, 8, adaptive=True, warmup=3, share=0.003)
    # 2 ms steps, 10 us a sample: 0.05 % of the run at the default spacing
    assert sample_run(cadence, 100, 2e-3, 1e-5) == list(range(0, 100, 10))
    assert cadence.every == 10


def test_a_costly_sample_is_spaced_to_its_share_on_the_gradient_norms_steps():
    cadence = SampleCadence(10, 8, adaptive=True, warmup=3, share=0.003)
    sampled = sample_run(cadence, 2000, 2e-3, 1e-3)
    # the warm-up at the default spacing; then 1 ms a sample at 0.3 % of 2 ms steps: 167 steps apart at least, the
    # smallest power-of-two multiple of the gradient norm's 8 steps being 256
    assert sampled[:4] == [0, 10, 20, 30]
    assert cadence.every == 256
    assert sampled[4:] == [255, 511, 767, 1023, 1279, 1535, 1791]
    assert all((step + 1) % 8 == 0 for step in sampled[4:])  # a step whose gradient norm is measured anyway
    # the samples' share of the time after the warm-up
    assert 1e-3 * len(sampled[4:]) / (2e-3 * (2000 - 30)) <= 0.003


def test_the_spacing_is_bounded_and_fixed_spacings_stay():
    bounded = SampleCadence(10, 8, adaptive=True, warmup=1, share=1e-9)
    sample_run(bounded, 100, 2e-3, 1e-3)
    assert bounded.every == MAX_SPACING
    fixed = SampleCadence(10, 8, adaptive=False, warmup=1, share=1e-9)
    assert sample_run(fixed, 100, 2e-3, 1e-3) == list(range(0, 100, 10))


@pytest.mark.parametrize(("share", "asked", "updates", "spacing"), [
    (1e-12, None, 3, MAX_SPACING),  # any cost is too much: after the warm-up (steps 0 and 10), step 20 is the last
    (1.0, None, 4, 10),  # any cost is fine: one step in ten
    (1e-12, 10, 4, 10),  # a spacing asked for is kept, whatever it costs
])  # fmt: skip
def test_samples_in_a_trainer_follow_their_measured_cost(tmp_path, monkeypatch, share, asked, updates, spacing):
    monkeypatch.setattr(gns_cadence, "SAMPLE_SHARE", share)
    monkeypatch.setattr(gns_cadence, "NORM_SHARE", 1.0)  # the norms' own spacing: see the test below
    gns = GradientNoiseScale(min_updates=2, sample_every_n_steps=asked, log_metrics=False)
    trainer = tiny_trainer(tmp_path, [gns], 40, logger=False)
    module = make_module(pl, n=320)
    trainer.fit(module)
    assert gns.active_source == "per_example"
    assert gns.estimator.read().updates == updates
    assert gns.sample_spacing == spacing
    assert gns.estimate.updates == updates  # read at the end of training, every update in
    assert not any(m._forward_hooks for m in module.modules())  # no hook left on the model between samples
    # the gradient norm keeps its own cadence: one step in eight, and every sampled step
    assert set(range(7, 40, 8)) <= set(gns.history.series("grad_norm").steps.tolist())
