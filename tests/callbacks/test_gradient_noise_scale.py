"""GradientNoiseScale inside real Trainers, against exact per-example gradients (torch.func, float64)."""

from __future__ import annotations

import csv

import lightning.pytorch as lp
import pytest
import pytorch_lightning as pl
import torch
from gns_helpers import (
    assert_squared_norm,
    make_module,
    mostly_one_class,
    per_example_grads,
    per_example_sq_norms,
    population_noise_scale,
    seq_loss,
)

from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.history import RunHistory
from run_helpers import tiny_trainer
from tiny_models import EitherFlavourCallback


class ExactProbe(EitherFlavourCallback):
    """Recompute the step's small and big squared norms with torch.func before the optimizer moves the weights; keep
    the exact gradient norm of each step (``grad_norms``) for the history to be checked against."""

    def __init__(self, gns: GradientNoiseScale, accumulate: int = 1) -> None:
        self.gns = gns
        self.accumulate = accumulate
        self.batches: list = []
        self.checked = 0
        self.grad_norms: list[float] = []
        self.kinds: set[type] = set()  # of the squared norms measured: floats on the host, tensors on the device

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        ids = torch.cat([b[0] for b in self.batches])
        y = torch.cat([b[1] for b in self.batches])
        per = per_example_grads(pl_module.model, seq_loss, ids, y)
        flat = torch.cat([g.flatten(1) for g in per.values()], dim=1)
        if self.gns.active_source == "per_example":
            small = per_example_sq_norms(per).mean()
        else:  # mean over micro-batches of the micro-batch mean gradient's squared norm
            small = torch.stack([chunk.mean(0).square().sum() for chunk in flat.split(len(self.batches[0][0]))]).mean()
        big = flat.mean(0).square().sum()
        # floats on a CPU (the step's arithmetic runs on the host there), 0-d tensors on an accelerator
        assert_squared_norm(self.gns.last_small_sq, small)
        assert_squared_norm(self.gns.last_big_sq, big)
        # The gradient the optimizer applies: each micro-batch's loss divided by `accumulate`, also on an epoch's last,
        # short accumulation (where it is less than the mean gradient, whose norm the noise scale's big batch takes).
        self.grad_norms.append(big.sqrt().item() * len(self.batches) / self.accumulate)
        self.kinds.add(type(self.gns.last_big_sq))
        self.gns.last_small_sq = self.gns.last_big_sq = None
        self.batches = []
        self.checked += 1


@pytest.mark.parametrize(
    ("flavour", "accumulate", "source", "expected"),
    [
        (pl, 1, "auto", "per_example"),
        (lp, 4, "auto", "microbatch"),
        (pl, 2, "per_example", "per_example"),
    ],
    ids=["pytorch_lightning-per_example", "lightning-accumulate4", "per_example-accumulate2"],
)
@pytest.mark.parametrize("arithmetic", ["host", "device"])
def test_norms_in_a_trainer_equal_exact(tmp_path, monkeypatch, flavour, accumulate, source, expected, arithmetic):
    """On a CPU the step's arithmetic runs on Python floats; on an accelerator on device tensors (no host sync). The
    device path is taken here on the CPU too, as if it were an accelerator: both give the exact norms."""
    if arithmetic == "device":
        monkeypatch.setattr("curvecast.callbacks.gradient_noise_scale.trains_on_cpu", lambda trainer: False)
    gns = GradientNoiseScale(source=source, sample_every_n_steps=1)
    probe = ExactProbe(gns, accumulate)
    trainer = tiny_trainer(tmp_path, [gns, probe], 3, logger=False, flavour=flavour, precision="64-true",
                           accumulate_grad_batches=accumulate)  # fmt: skip
    trainer.fit(make_module(flavour, batch_size=4))
    assert gns.active_source == expected
    assert probe.checked == 3
    assert gns.estimator.read().updates == 3
    assert probe.kinds == ({float} if arithmetic == "host" else {torch.Tensor})
    grad_norm = gns.history.series("grad_norm")
    assert grad_norm.steps.tolist() == [0, 1, 2]
    torch.testing.assert_close(grad_norm.values.tolist(), probe.grad_norms, rtol=1e-9, atol=0)


@pytest.mark.parametrize("source", ["microbatch", "per_example"])
def test_an_epochs_short_last_accumulation_measures_the_mean_gradient(tmp_path, source):
    """Six batches an epoch at ``accumulate_grad_batches=4``: every other step is of two micro-batches, whose losses
    Lightning still divides by 4. The big batch's squared norm is still the mean gradient's (it came out a quarter of
    it, and the estimate of |G|^2 negative), and the recorded gradient norm that of the gradient applied."""
    gns = GradientNoiseScale(source=source, sample_every_n_steps=1, log_every_n_steps=2, min_updates=2)
    probe = ExactProbe(gns, accumulate=4)
    trainer = tiny_trainer(tmp_path, [gns, probe], 4, logger=False, precision="64-true", accumulate_grad_batches=4)
    trainer.fit(make_module(pl, n=24, batch_size=4))
    assert probe.checked == 4
    assert gns.estimator.read().updates == 4
    torch.testing.assert_close(gns.history.series("grad_norm").values.tolist(), probe.grad_norms, rtol=1e-9, atol=0)
    assert gns.history.series("gns/b_simple").steps.tolist() == [1, 3]
    assert (gns.history.series("gns/grad_sq_norm").values > 0).all()


def test_frozen_weights_b_simple_within_10_percent_of_exact(tmp_path):
    data = mostly_one_class(256, seed=1)
    module = make_module(pl, lr=0.0, batch_size=32, seed=1, data=data, replacement=True)
    truth_g2, truth_s = population_noise_scale(per_example_grads(module.model.double(), seq_loss, *data))
    gns = GradientNoiseScale(beta=0.995, sample_every_n_steps=1)
    trainer = tiny_trainer(tmp_path, [gns], 200, logger=False, precision="64-true", log_every_n_steps=50)
    trainer.fit(module)
    assert gns.b_simple == pytest.approx(truth_s / truth_g2, rel=0.1)
    assert gns.history.series("gns/b_simple").steps.tolist() == [49, 99, 149, 199]


def test_logs_metrics_and_records_every_grad_norm(tmp_path):
    from pytorch_lightning.loggers import CSVLogger

    gns = GradientNoiseScale(min_updates=2, sample_every_n_steps=1)
    logger = CSVLogger(tmp_path, name="run")
    trainer = tiny_trainer(tmp_path, [gns], 8, logger=logger, log_every_n_steps=4)
    trainer.fit(make_module(pl))
    assert gns.history.series("grad_norm").steps.tolist() == list(range(8))
    assert gns.history.series("gns/b_simple").steps.tolist() == [3, 7]
    with open(f"{logger.log_dir}/metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    logged = {row["step"]: row for row in rows}
    for name in ("grad_norm", "gns/b_simple", "gns/trace_cov", "gns/grad_sq_norm"):
        assert logged["7"]["curvecast/" + name] != ""
    assert float(logged["7"]["curvecast/gns/b_simple"]) == pytest.approx(gns.b_simple)
    assert float(logged["7"]["curvecast/grad_norm"]) == pytest.approx(gns.history.last("grad_norm")[1])


def test_values_reach_the_host_only_at_the_cadence(tmp_path):
    seen: list[int] = []

    class Watch(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(gns.history.num_points("grad_norm") if "grad_norm" in gns.history else 0)

    gns = GradientNoiseScale(log_every_n_steps=3, norm_every_n_steps=1, log_metrics=False)
    trainer = tiny_trainer(tmp_path, [gns, Watch()], 7, logger=False)
    trainer.fit(make_module(pl))
    # The norms stay device tensors between flushes: the history gets them three at a time; the last step flushes too.
    assert seen == [0, 0, 3, 3, 3, 6, 7]


def test_per_example_source_samples_one_step_in_ten_by_default(tmp_path):
    gns = GradientNoiseScale(log_metrics=False)
    trainer = tiny_trainer(tmp_path, [gns], 12, logger=False)
    trainer.fit(make_module(pl, n=128))
    assert gns.active_source == "per_example"
    assert gns.estimator.read().updates == 2  # steps 0 and 10
    # On a CPU the gradient norm of one step in eight (the last before each move to the host), and of every sampled
    # step.
    assert gns.history.series("grad_norm").steps.tolist() == [0, 7, 10]


def test_per_example_hooks_are_on_the_model_only_for_sampled_steps(tmp_path):
    hooked: list[bool] = []

    class Look(pl.Callback):  # placed after the sensor: sees the step as the forward pass will
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            hooked.append(any(m._forward_hooks for m in pl_module.modules()))

    gns = GradientNoiseScale(sample_every_n_steps=3, log_metrics=False)
    trainer = tiny_trainer(tmp_path, [gns, Look()], 7, logger=False)
    module = make_module(pl, n=128)
    trainer.fit(module)
    assert hooked == [True, False, False, True, False, False, True]
    assert gns.estimator.read().updates == 3  # steps 0, 3 and 6 measured through the hooks
    assert not any(m._forward_hooks for m in module.modules())  # nothing left behind


def test_gradient_norm_of_every_step_when_asked(tmp_path):
    gns = GradientNoiseScale(norm_every_n_steps=1, log_metrics=False)
    trainer = tiny_trainer(tmp_path, [gns], 6, logger=False)
    trainer.fit(make_module(pl))
    assert gns.history.series("grad_norm").steps.tolist() == list(range(6))


def test_single_device_microbatch_without_accumulation_warns_and_keeps_grad_norm(tmp_path):
    gns = GradientNoiseScale(source="microbatch", norm_every_n_steps=1)
    trainer = tiny_trainer(tmp_path, [gns], 2, logger=False)
    with pytest.warns(UserWarning, match="needs gradient accumulation"):
        trainer.fit(make_module(pl))
    assert gns.active_source is None
    assert gns.b_simple is None
    assert len(gns.history.series("grad_norm")) == 2


def test_state_round_trip_and_resume(tmp_path):
    gns = GradientNoiseScale(min_updates=2, log_every_n_steps=2, sample_every_n_steps=1)
    trainer = tiny_trainer(tmp_path, [gns], 6, logger=False)
    trainer.fit(make_module(pl))
    ckpt = tmp_path / "gns.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)["callbacks"][gns.state_key]
    assert saved == gns.state_dict()

    copy = GradientNoiseScale(min_updates=2)
    copy.load_state_dict(gns.state_dict())
    assert copy.b_simple == gns.b_simple is not None
    assert copy.estimator.read() == gns.estimator.read()
    assert copy.history.series("grad_norm").values.tolist() == gns.history.series("grad_norm").values.tolist()

    restored: list = []

    class Check(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            restored.append(resumed.estimator.read())

    resumed = GradientNoiseScale(min_updates=2, log_every_n_steps=2, sample_every_n_steps=1)
    trainer = tiny_trainer(tmp_path, [resumed, Check()], 8, logger=False)
    trainer.fit(make_module(pl), ckpt_path=ckpt)
    assert restored == [gns.estimator.read()]
    assert resumed.estimator.read().updates == 8
    assert resumed.history.series("grad_norm").steps.tolist() == list(range(8))


def test_shared_history_is_not_saved_twice():
    history = RunHistory()
    gns = GradientNoiseScale(history=history)
    assert gns.history is history
    assert "history" not in gns.state_dict()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`source` to be one of"):
        GradientNoiseScale(source="comm_hook")
    with pytest.raises(ValueError, match="`sample_every_n_steps` to be a positive int"):
        GradientNoiseScale(sample_every_n_steps=0)
    with pytest.raises(ValueError, match="`log_every_n_steps` to be a positive int"):
        GradientNoiseScale(log_every_n_steps=0)
    with pytest.raises(ValueError, match="version"):
        GradientNoiseScale().load_state_dict({"version": 99})
