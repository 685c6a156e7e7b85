import numpy as np
import pytest
import torch

from curvecast.callbacks import LossCapture
from tiny_models import FLAVOURS, TinyRegression, loader


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_records_the_loss_of_every_optimizer_step_in_both_trainer_flavours(flavour, quiet_trainer_kwargs):
    trainer_cls, module_cls = FLAVOURS[flavour]
    capture = LossCapture()
    model = module_cls()
    trainer_cls(max_steps=6, callbacks=[capture], **quiet_trainer_kwargs).fit(model, loader())
    series = capture.history.series("loss")
    np.testing.assert_array_equal(series.steps, np.arange(6))
    np.testing.assert_allclose(series.values, model.raw_losses, rtol=1e-6)


@pytest.mark.parametrize("accumulate", [2, 3])
def test_accumulation_undoes_the_division_and_averages_micro_batches(accumulate, quiet_trainer_kwargs):
    capture = LossCapture()
    model = TinyRegression()
    trainer = FLAVOURS["pytorch_lightning"][0](
        max_steps=4, accumulate_grad_batches=accumulate, callbacks=[capture], **quiet_trainer_kwargs
    )
    trainer.fit(model, loader(n=8 * 4 * accumulate))
    series = capture.history.series("loss")
    expected = np.asarray(model.raw_losses[: 4 * accumulate]).reshape(4, accumulate).mean(axis=1)
    np.testing.assert_array_equal(series.steps, np.arange(4))
    np.testing.assert_allclose(series.values, expected, rtol=1e-6)


def test_manual_optimization(quiet_trainer_kwargs):
    capture = LossCapture()
    model = TinyRegression(manual=True)
    FLAVOURS["pytorch_lightning"][0](max_steps=5, callbacks=[capture], **quiet_trainer_kwargs).fit(model, loader())
    series = capture.history.series("loss")
    np.testing.assert_array_equal(series.steps, np.arange(5))
    np.testing.assert_allclose(series.values, model.raw_losses[:5], rtol=1e-6)


def test_flush_every_holds_values_on_the_device_until_the_cadence(quiet_trainer_kwargs):
    pending = []

    class Probe(LossCapture):
        def on_train_batch_end(self, *args, **kwargs):
            super().on_train_batch_end(*args, **kwargs)
            pending.append(self.pending_steps())

    capture = Probe(flush_every=4)
    FLAVOURS["pytorch_lightning"][0](max_steps=10, callbacks=[capture], **quiet_trainer_kwargs).fit(
        TinyRegression(), loader(n=80)
    )
    # The last step moves the rest to the host, as the gradient norms are moved there (the detectors pair the two).
    assert pending == [1, 2, 3, 0, 1, 2, 3, 0, 1, 0]
    assert capture.history.num_points("loss") == 10


def test_validation_metrics_are_recorded_at_the_steps_done(quiet_trainer_kwargs):
    capture = LossCapture()
    trainer = FLAVOURS["pytorch_lightning"][0](
        max_steps=8, val_check_interval=4, check_val_every_n_epoch=None, callbacks=[capture], **quiet_trainer_kwargs
    )
    trainer.fit(TinyRegression(), loader(n=80), loader(n=16, seed=1))
    val = capture.history.series("val_loss")
    np.testing.assert_array_equal(val.steps, [4, 8])
    assert np.all(np.isfinite(val.values))


def test_non_finite_losses_are_recorded_not_dropped(quiet_trainer_kwargs):
    class Exploding(TinyRegression):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            # A NaN value whose gradient is zero: the weights stay finite, only this step's loss is NaN.
            return loss * 0 + torch.tensor(float("nan")) if batch_idx == 2 else loss

    capture = LossCapture()
    FLAVOURS["pytorch_lightning"][0](max_steps=4, callbacks=[capture], **quiet_trainer_kwargs).fit(
        Exploding(), loader()
    )
    values = capture.history.series("loss").values
    assert np.isnan(values[2])
    assert np.isfinite(values[[0, 1, 3]]).all()


def test_invalid_flush_every():
    with pytest.raises(ValueError, match="Expected `flush_every` to be a positive int or None, but got 0"):
        LossCapture(flush_every=0)


def test_state_dict_round_trip():
    capture = LossCapture()
    capture.history.extend("loss", [0, 1, 2], [3.0, 2.0, 1.0])
    restored = LossCapture()
    restored.load_state_dict(capture.state_dict())
    np.testing.assert_array_equal(restored.history.series("loss").values, [3.0, 2.0, 1.0])


class _LogsWeights(TinyRegression):
    """Logs a warming-up `beta`, the optimizer's `weight_decay` and Adam's `beta1`, and ten `term{i}_weight`s."""

    def training_step(self, batch, batch_idx):
        self.log("beta", self.global_step / 10)
        self.log("weight_decay", 0.01)
        self.log("beta1", 0.9)
        for i in range(10):
            self.log(f"term{i}_weight", float(i))
        return super().training_step(batch, batch_idx)


def _captured(module: TinyRegression, flush_every: int, trainer_kwargs: dict, **run: int) -> LossCapture:
    """What a LossCapture flushing every ``flush_every`` steps recorded of ``module``'s run (``run``: its length)."""
    capture = LossCapture(flush_every=flush_every)
    FLAVOURS["pytorch_lightning"][0](callbacks=[capture], **run, **trainer_kwargs).fit(module, loader(n=96))
    return capture


def test_logged_weights_of_the_objective_are_sampled_at_each_flush(quiet_trainer_kwargs):
    capture = _captured(_LogsWeights(), 4, quiet_trainer_kwargs, max_steps=12)
    beta = capture.history.series("beta")
    np.testing.assert_array_equal(beta.steps, [3, 7, 11])  # at the last step of each flush
    np.testing.assert_allclose(beta.values, [0.3, 0.7, 1.1], rtol=1e-6)  # the value the step of that index logged
    assert "weight_decay" not in capture.history
    assert "beta1" not in capture.history
    assert sum(name.endswith("_weight") for name in capture.history.names()) == 7  # 8 weights at most, beta among them


class _LogsBetaFromEpoch2(TinyRegression):
    """Logs `beta` only from its third epoch on (a KL warm-up that starts late)."""

    def training_step(self, batch, batch_idx):
        if self.current_epoch >= 2:
            self.log("beta", self.global_step / 100)
        return super().training_step(batch, batch_idx)


def test_a_weight_logged_from_a_later_epoch_is_still_sampled(quiet_trainer_kwargs):
    # 12 steps an epoch, a flush every 2: the first epochs' flushes find no weight and stop reading the names, which
    # are read again at each epoch's end.
    capture = _captured(_LogsBetaFromEpoch2(), 2, quiet_trainer_kwargs, max_epochs=4)
    beta = capture.history.series("beta")
    assert beta.steps[0] == 25  # the first flush of the third epoch
    assert list(beta.steps) == list(range(25, 48, 2))  # then every flush
