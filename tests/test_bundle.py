import json
import logging
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as L
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from curvecast import Actuator, Curvecast
from curvecast._lightning import CPU_HOST_STEPS
from curvecast.callbacks import Throughput
from curvecast.failsafe import CurvecastWarning
from curvecast.integrations import RunContext, StopReason
from run_helpers import read_events, tiny_trainer
from tiny_models import CurveModule, LogsValLoss, TinyRegression, TinyRegressionL, loader


class Recorder(Actuator):
    """An actuator that keeps every report with a forecast it is given (anomaly reports apart)."""

    def __init__(self):
        self.reports = []
        self.anomalies = []

    def on_report(self, trainer, pl_module, report):
        self.anomalies += report.anomalies
        if report.forecast is not None:
            self.reports.append(report)


class Journal(Actuator):
    """Every report, with or without a forecast."""

    def __init__(self):
        self.reports = []

    def on_report(self, trainer, pl_module, report):
        self.reports.append(report)


def test_forecasts_the_training_loss_on_its_cadence(quiet_trainer_kwargs):
    torch.manual_seed(0)  # the model's initial weights: the curve, and so the forecast, the same in every run
    recorder = Recorder()
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None, actuators=[recorder])
    pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(lr=0.02), loader(n=320))
    steps = [r.step for r in recorder.reports]
    # One forecast for each multiple of 10 steps passed, from the first point past it (the losses reach the host
    # every CPU_HOST_STEPS = 8 steps on one CPU: after steps 7, 15, 23, ...), and a final one at the end of training.
    assert CPU_HOST_STEPS == 8
    assert steps == [15, 23, 31, 39]
    last = bundle.last_report
    assert last == recorder.reports[-1]  # the same report, kept without its series
    assert last.horizon == 40
    assert last.lr_schedule_known
    assert last.forecast.ok
    observed = bundle.history.series("loss").values
    lo, hi = last.forecast.interval(0.8)
    assert lo <= last.forecast.final <= hi
    # The loss fell by an order of magnitude and has nearly settled: the forecast one step ahead is a positive
    # value of the size of the last observed ones (their median: one batch in five lands 3x above the others), not
    # an extrapolation of the early descent.
    assert observed[-5:].mean() < 0.2 * observed[:5].mean()
    assert lo > 0
    assert last.forecast.final == pytest.approx(np.median(observed[-10:]), rel=0.6)


def test_monitoring_a_validation_metric_forecasts_after_each_validation(quiet_trainer_kwargs):
    recorder = Recorder()
    bundle = Curvecast(forecast_budget=None, monitor="val_loss", background=False, actuators=[recorder])
    trainer = pl.Trainer(
        max_steps=40,
        val_check_interval=8,
        check_val_every_n_epoch=None,
        callbacks=[bundle],
        **quiet_trainer_kwargs,
    )
    trainer.fit(TinyRegression(lr=0.02), loader(n=320), loader(n=32, seed=1))
    assert [r.step for r in recorder.reports] == [8, 16, 24, 32, 40]
    assert all(r.monitor == "val_loss" for r in recorder.reports)


def test_every_validation_reaches_the_actuators_when_the_budget_holds_its_forecast_back(quiet_trainer_kwargs):
    """A budget too small for any forecast during the run: each validation still brings one report (without a
    forecast), so an actuator judging every validation (an Optuna trial's reporter) hears of each."""

    journal = Journal()
    bundle = Curvecast(forecast_budget=0.001, monitor="val_loss", background=False, actuators=[journal])
    trainer = pl.Trainer(max_steps=40, val_check_interval=8, check_val_every_n_epoch=None, callbacks=[bundle],
                         **quiet_trainer_kwargs)  # fmt: skip
    trainer.fit(TinyRegression(lr=0.02), loader(n=320), loader(n=32, seed=1))
    bare = journal.reports[:-1]
    assert [r.step for r in bare] == [8, 16, 24, 32, 40]
    assert all(r.forecast is None and r.observed is not None for r in bare)
    final = journal.reports[-1]  # the end of training forecasts the last point all the same
    assert final.is_last
    assert final.step == 40
    assert final.forecast is not None


def test_works_in_a_lightning_pytorch_trainer(quiet_trainer_kwargs):
    bundle = Curvecast(forecast_budget=None, forecast_every=5, background=False)
    L.Trainer(max_steps=12, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegressionL(), loader(n=96))
    assert bundle.history.num_points("loss") == 12
    assert bundle.history.num_points("lr") == 12
    assert bundle.last_report.step == 11


def test_background_forecasts_reach_the_actuators(quiet_trainer_kwargs):
    recorder = Recorder()
    bundle = Curvecast(forecast_budget=None, forecast_every=4, actuators=[recorder])
    pl.Trainer(max_steps=24, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader(n=192))
    assert recorder.reports, "no forecast came back from the worker thread"
    assert recorder.reports[-1].step == 23
    # Each report carries a forecast, or says why none was made (early on this noisy toy loss is too uncertain).
    assert all(r.forecast.ok or r.forecast.reason for r in recorder.reports)
    assert recorder.reports[-1].forecast.ok


def test_history_survives_a_checkpoint_resume(tmp_path, quiet_trainer_kwargs):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1)
    first = Curvecast(forecast_budget=None, background=False)
    tiny_trainer(tmp_path, [first, checkpoint], 10, logger=False, enable_checkpointing=True).fit(
        TinyRegression(), loader(n=160)
    )
    saved = torch.load(checkpoint.best_model_path, weights_only=True)["callbacks"][first.state_key]
    assert saved["history"]["series"]["loss"]["steps"] == list(range(10))

    second = Curvecast(forecast_budget=None, background=False)
    pl.Trainer(max_steps=20, callbacks=[second], **quiet_trainer_kwargs).fit(
        TinyRegression(), loader(n=160), ckpt_path=checkpoint.best_model_path
    )
    loss = second.history.series("loss")
    np.testing.assert_array_equal(loss.steps, np.arange(20))
    np.testing.assert_array_equal(loss.values[:10], first.history.series("loss").values)


def test_a_checkpoint_between_two_moves_to_the_host_keeps_every_gradient_norm_measured(tmp_path):
    # On one CPU the norms reach the history every 8 steps; a checkpoint at step 42 comes between two of those moves,
    # after the noise scale's sample of step 40 measured one.
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=42, save_top_k=-1)
    bundle = Curvecast(forecast_budget=None, background=False)
    tiny_trainer(tmp_path, [bundle, checkpoint], 50, logger=False, enable_checkpointing=True).fit(
        TinyRegression(), loader(n=1024)
    )
    saved = torch.load(checkpoint.best_model_path, weights_only=True)["callbacks"][bundle.state_key]
    measured = [step for step in bundle.history.series("grad_norm").steps.tolist() if step < 42]
    assert measured[-1] > 39  # one past the last move to the host before the checkpoint (step 39)
    assert saved["history"]["series"]["grad_norm"]["steps"] == measured


def test_validate_and_test_after_fit_leave_the_runs_history_as_it_was(tmp_path):
    # `validate`/`test(ckpt_path="best")` restore callback state from an earlier checkpoint, and run validation
    # again: the finished run's curves are no such restore's nor such validation's to rewrite.
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=1)
    bundle = Curvecast(monitor="val_loss", forecast_budget=None, background=False)
    trainer = tiny_trainer(tmp_path, [bundle, checkpoint], 80, logger=False, enable_checkpointing=True,
                           val_check_interval=10, check_val_every_n_epoch=None)  # fmt: skip
    module = LogsValLoss()
    trainer.fit(module, loader(n=1024))
    before = {name: (s.steps.tolist(), s.values.tolist()) for name in bundle.history.names()
              for s in [bundle.history.series(name)]}  # fmt: skip
    trainer.validate(module, ckpt_path=checkpoint.best_model_path, verbose=False)
    trainer.validate(module, dataloaders=loader(n=64, seed=7), verbose=False)
    after = {name: (s.steps.tolist(), s.values.tolist()) for name in bundle.history.names()
             for s in [bundle.history.series(name)]}  # fmt: skip
    assert after == before
    assert before["val_loss"][0] == list(range(10, 81, 10))


class LogsTrainMse(LogsValLoss):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_mse", loss)
        return loss


def test_validate_before_fit_says_nothing_of_a_training_monitor(tmp_path, caplog):
    # A standalone `validate` trains nothing: a monitor logged in `training_step` cannot be there yet.
    bundle = Curvecast(monitor="train_mse", forecast_budget=None, background=False)
    trainer = tiny_trainer(tmp_path, [bundle], 20, logger=False)
    module = LogsTrainMse()
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.validate(module, verbose=False)
        assert not [r for r in caplog.records if "has not been logged yet" in r.getMessage()]  # said before
        trainer.fit(module, loader(n=160))
    assert not [r for r in caplog.records if "has not been logged yet" in r.getMessage()]
    assert bundle.history.num_points("train_mse") == 20
    assert bundle.last_report is not None
    assert bundle.last_report.forecast.ok


def test_state_dict_round_trip_restores_every_part(tmp_path):
    first = Curvecast(forecast_budget=None, target=1.0, early_stopping=True, background=False)
    first.history.extend("loss", range(300), 2.0 + 3.0 * (1 + np.arange(300) / 20) ** -0.5)
    for step in range(300):
        first.history.append("grad_norm", step, 1.0)
    first.throughput.totals = {"steps": 7, "samples": 56, "seconds": 0.5}
    first.early_stopping.rule.wait = 2
    state = first.state_dict()
    assert set(state) >= {"history", "watch", "gradient_noise", "throughput", "early_stopping"}
    second = Curvecast(forecast_budget=None, target=1.0, early_stopping=True, background=False)
    torch.save(state, tmp_path / "state.pt")
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    # Compared as JSON text: the detectors keep NaN for "not known yet", and NaN != NaN.
    assert json.dumps(second.state_dict(), sort_keys=True) == json.dumps(state, sort_keys=True)
    assert second.early_stopping.rule.wait == 2
    assert second.throughput.totals["steps"] == 7


def test_a_failing_actuator_becomes_one_warning_and_the_run_goes_on(quiet_trainer_kwargs, monkeypatch):

    class Broken(Actuator):

        def on_report(self, trainer, pl_module, report):
            raise RuntimeError("boom")

    recorder = Recorder()
    bundle = Curvecast(forecast_every=5, background=False, forecast_budget=None, actuators=[Broken(), recorder])
    trainer = pl.Trainer(max_steps=10, callbacks=[bundle], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning) as caught:
        trainer.fit(TinyRegression(), loader(n=80))
    assert trainer.global_step == 10
    # the other actuators still got every report: the first past step 5 (losses reach the host after step 7), the last
    assert [r.step for r in recorder.reports] == [7, 9]
    assert sum("Broken failed on a report" in str(w.message) for w in caught) == 1  # twice failed, told once


def test_a_failing_sensor_becomes_one_warning(quiet_trainer_kwargs):
    bundle = Curvecast(forecast_budget=None, background=False)

    def broken(*args, **kwargs):
        raise ValueError("sensor broke")

    bundle.lr_capture.history = SimpleNamespace(append=broken)
    trainer = pl.Trainer(max_steps=6, callbacks=[bundle], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match="sensor broke"):
        trainer.fit(TinyRegression(), loader())
    assert trainer.global_step == 6
    assert bundle.history.num_points("loss") == 6


def test_a_sensor_failing_at_every_step_is_one_warning_naming_its_hook(quiet_trainer_kwargs, monkeypatch):
    """The bundle calls a guarded hook in its own `try`: the warning `guarded` gives, once, and the run goes on."""

    def broken(batch):
        raise ValueError("rows broke")

    monkeypatch.setattr("curvecast.callbacks.throughput.infer_batch_rows", broken)
    bundle = Curvecast(forecast_budget=None, background=False)
    trainer = pl.Trainer(max_steps=12, callbacks=[bundle], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match="rows broke") as caught:
        trainer.fit(TinyRegression(), loader())
    broke = [str(w.message) for w in caught if "rows broke" in str(w.message)]
    assert broke == ["curvecast: Throughput.on_train_batch_start failed and was skipped (ValueError: rows broke)"]
    assert trainer.global_step == 12
    assert bundle.history.num_points("loss") == 12
    assert bundle.history.num_points("lr") == 12  # the hooks after it in the same step ran


def test_an_unguarded_hook_of_a_configured_sensor_raises_as_it_would_alone(quiet_trainer_kwargs):
    """Only a hook under `guarded` is guarded by the bundle: a subclass's own hook keeps its exceptions."""

    class Strict(Throughput):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            raise RuntimeError("strict sensor")

    bundle = Curvecast(throughput=Strict(log_metrics=False), forecast_budget=None, background=False)
    with pytest.raises(RuntimeError, match="strict sensor"):
        pl.Trainer(max_steps=3, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader())


def test_a_configured_sensor_acting_before_zero_grad_is_forwarded_that_hook(quiet_trainer_kwargs):
    """The bundle leaves `on_before_zero_grad` to Lightning unless one of its sensors acts there."""

    class ZeroGradCounter(Throughput):
        calls = 0

        def on_before_zero_grad(self, trainer, pl_module, optimizer):
            self.calls += 1

    counter = ZeroGradCounter(log_metrics=False)
    bundle = Curvecast(throughput=counter, forecast_budget=None, background=False)
    pl.Trainer(max_steps=5, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader())
    assert counter.calls == 5
    assert "on_before_zero_grad" not in vars(Curvecast())  # the default bundle has no forwarding to pay for


def test_a_stop_decision_stops_the_run_and_every_actuator_reads_it_on_the_report(quiet_trainer_kwargs, caplog):
    class StopAt12(Actuator):
        def decide(self, report):
            return SimpleNamespace(message="enough") if report.step >= 12 else None

    journal = Journal()
    bundle = Curvecast(forecast_every=4, background=False, forecast_budget=None, actuators=[journal, StopAt12()])
    trainer = pl.Trainer(max_steps=100, callbacks=[bundle], **quiet_trainer_kwargs)
    with caplog.at_level(logging.WARNING, logger="curvecast"):
        trainer.fit(TinyRegression(), loader(n=800))
    # decided on the first report past step 12, that of step 15 (losses reach the host every 8 steps on one CPU), and
    # the run stops after that step
    assert trainer.global_step == 16
    assert bundle.stop.reason is StopReason.REQUESTED
    assert bundle.stop.message == "enough"
    stops = [r for r in journal.reports if r.stop is not None]
    assert [r.stop for r in stops] == [bundle.stop]  # decided once, seen by an actuator listed before the decider
    assert stops[0].is_last
    assert journal.reports[-1].is_last
    assert not any(r.is_last for r in journal.reports[: journal.reports.index(stops[0])])
    assert sum("[early_stop]" in r.getMessage() and "enough" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "up"}, r"Expected `mode` to be one of \('min', 'max'\), but got 'up'"),
        ({"forecast_every": 0}, "Expected `forecast_every` to be a positive int, but got 0"),
        ({"forecast_budget": 0.0}, r"Expected `forecast_budget` to lie in \(0, 1\] or be None, but got 0.0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Curvecast(**kwargs)


def test_a_spike_in_the_loss_is_reported_at_its_step(quiet_trainer_kwargs):
    rng = np.random.default_rng(0)
    steps = np.arange(200)
    curve = (2.0 + 3.0 * (1 + steps / 20) ** -0.5) * np.exp(0.01 * rng.standard_normal(200))
    curve[150] *= 3.0
    recorder = Recorder()
    bundle = Curvecast(forecast_budget=None, forecast_every=50, background=False, actuators=[recorder])
    pl.Trainer(max_steps=200, callbacks=[bundle], **quiet_trainer_kwargs).fit(CurveModule(curve=curve))
    spikes = [a for a in recorder.anomalies if a.kind == "spike"]
    assert [(a.step, a.series) for a in spikes] == [(150, "loss")]
    assert not [a for a in recorder.anomalies if a.kind in ("divergence", "nonfinite")]


def test_mixed_precision_and_accumulation_together(quiet_trainer_kwargs):
    bundle = Curvecast(forecast_budget=None, forecast_every=5, background=False)
    model = TinyRegression()
    trainer = pl.Trainer(
        max_steps=12, precision="bf16-mixed", accumulate_grad_batches=2, callbacks=[bundle], **quiet_trainer_kwargs
    )
    trainer.fit(model, loader(n=192))
    loss = bundle.history.series("loss")
    np.testing.assert_array_equal(loss.steps, np.arange(12))
    # bf16 autocast losses, un-divided and averaged over the two micro-batches of each step.
    expected = np.asarray(model.raw_losses[:24]).reshape(12, 2).mean(axis=1)
    np.testing.assert_allclose(loss.values, expected, rtol=1e-2)
    assert bundle.history.num_points("grad_norm") == 12
    assert bundle.last_report.forecast is not None


def test_sensors_and_actuators_can_be_configured_or_left_out(quiet_trainer_kwargs):
    from curvecast.callbacks import GradientNoiseScale
    from curvecast.integrations import ForecastEarlyStopping, TensorBoardReporter

    gns = GradientNoiseScale(source="per_example", sample_every_n_steps=1)
    bundle = Curvecast(gradient_noise=gns, throughput=False, tensorboard=False, early_stopping=True, background=False)
    assert bundle.gradient_noise is gns
    assert gns.history is bundle.history
    assert bundle.throughput is None
    assert isinstance(bundle.early_stopping, ForecastEarlyStopping)
    assert not any(isinstance(a, TensorBoardReporter) for a in bundle.actuators)
    pl.Trainer(max_steps=15, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader(n=120))
    assert "gns/b_simple" in bundle.history
    assert "throughput/step_time" not in bundle.history


def test_a_sensor_of_the_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="Expected `throughput` to be a bool or a Throughput, but got str"):
        Curvecast(throughput="fast")


def _trainer_into_one_tensorboard_run(tmp_path, max_steps: int, callbacks) -> pl.Trainer:
    """A Trainer that checkpoints and logs to the TensorBoard run ``run/fixed``: every fit of a test writes there."""
    logger = TensorBoardLogger(tmp_path, name="run", version="fixed", default_hp_metric=False)
    return tiny_trainer(tmp_path, callbacks, max_steps, logger=logger, enable_checkpointing=True)


def _event_files_in_write_order(run_dir) -> list[Path]:
    """The event files of a run (each fit writes its own), in the order they were written.

    TensorBoard orders files by name, and within one second the name's counter (`.9` then `.10`) does not sort by
    time, so the files are taken by their modification time instead.
    """
    return sorted(Path(run_dir).glob("events.out.tfevents.*"), key=lambda path: path.stat().st_mtime_ns)


def _steps_in_write_order(run_dir, tag: str) -> list[int]:
    """The steps of one tag over every event file of a run, file by file in the order they were written."""
    steps = []
    for path in _event_files_in_write_order(run_dir):
        events = read_events(path)
        if tag in events.Tags()["scalars"]:
            steps += [event.step for event in events.Scalars(tag)]
    return steps


def test_resuming_into_the_same_tensorboard_run_never_rewrites_a_step(tmp_path):
    def trainer(max_steps, callbacks):
        return _trainer_into_one_tensorboard_run(tmp_path, max_steps, callbacks)

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
    first = Curvecast(forecast_budget=None, forecast_every=10, background=False)
    trainer(20, [first, checkpoint]).fit(TinyRegression(lr=0.02), loader(n=320))
    second = Curvecast(forecast_budget=None, forecast_every=10, background=False)
    # The resumed fit restores the sensors' state too: the noise-scale EMAs go on instead of starting over.
    updates_saved = first.gradient_noise.estimate.updates
    trainer(40, [second]).fit(TinyRegression(lr=0.02), loader(n=320), ckpt_path=checkpoint.best_model_path)
    assert second.gradient_noise.estimate.updates > updates_saved

    for tag in ("curvecast/loss", "curvecast/forecast/final"):
        steps = _steps_in_write_order(tmp_path / "run" / "fixed", tag)
        assert steps == sorted(set(steps)), f"{tag} has a step written twice"
    assert _steps_in_write_order(tmp_path / "run" / "fixed", "curvecast/loss") == list(range(40))


def test_the_tab_still_lists_the_anomalies_from_before_a_resume(tmp_path):
    from curvecast.tensorboard_plugin.summary import EVENTS_TAG, decode

    steps = np.arange(80)
    curve = (2.0 + 3.0 * (1 + steps / 10) ** -0.5) * np.exp(0.01 * np.random.default_rng(0).standard_normal(80))
    curve[[30, 60]] *= 3.0  # a spike before the checkpoint at step 40, and one after the resume

    def trainer(max_steps, callbacks):
        return _trainer_into_one_tensorboard_run(tmp_path, max_steps, callbacks)

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=40, save_top_k=-1)
    trainer(40, [Curvecast(forecast_every=20, background=False), checkpoint]).fit(CurveModule(curve=curve))
    trainer(80, [Curvecast(forecast_every=20, background=False)]).fit(
        CurveModule(curve=curve), ckpt_path=checkpoint.best_model_path
    )

    last_file = _event_files_in_write_order(tmp_path / "run" / "fixed")[-1]
    last = read_events(last_file).Tensors(EVENTS_TAG)[-1]
    listed = decode(last.tensor_proto.string_val[0])["anomalies"]
    assert [(a["kind"], a["step"]) for a in listed if a["kind"] == "spike"] == [("spike", 30), ("spike", 60)]


def test_an_unreadable_saved_state_is_a_warning_and_a_fresh_start():
    bundle = Curvecast(forecast_budget=None)
    bundle.history.append("loss", 0, 1.0)
    with pytest.warns(CurvecastWarning, match="could not be restored"):
        bundle.load_state_dict({"version": 1, "history": {"version": 99}})
    assert bundle.history.names() == []


def test_an_actuator_sees_its_hooks_in_order_and_the_run_through_its_reports(quiet_trainer_kwargs):
    class Journal(Actuator):
        def __init__(self):
            self.calls = []

        def bind(self, run):
            super().bind(run)
            self.calls.append("bind")

        def on_fit_start(self, trainer, pl_module):
            self.calls.append("on_fit_start")

        def on_train_start(self, trainer, pl_module):
            self.calls.append("on_train_start")

        def on_report(self, trainer, pl_module, report):
            self.last = report
            if not self.calls or self.calls[-1] != "on_report":
                self.calls.append("on_report")

        def close(self):
            self.calls.append("close")

    journal = Journal()
    bundle = Curvecast(forecast_budget=None, forecast_every=10, background=False, target=0.5, actuators=[journal])
    assert journal.run == RunContext(monitor="loss", mode="min", target=0.5, forecast_every=10)
    pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs).fit(TinyRegression(), loader())
    assert journal.calls == ["bind", "on_fit_start", "on_train_start", "on_report", "close"]
    last = journal.last
    assert last.is_last
    assert last.stop is None
    assert bundle.stop is None
    assert len(last.schedule) == 41  # the LR of every step 0..max_steps
    loss = bundle.history.series("loss").values
    assert last.observed == loss[-1]
    assert last.best == loss.min()
    assert last.lr == last.peak_lr == bundle.history.series("lr").values.max()
    assert last.target_chance == last.forecast.prob_below(0.5)
    assert np.array_equal(last.series["loss"].values, loss)
    with pytest.raises(TypeError, match="Expected an actuator to subclass curvecast.Actuator"):
        bundle.attach(object())


class LogsTrainAcc(TinyRegression):
    """Logs a rising training metric every step (and returns its loss as usual)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_acc", 1.0 - 0.5 / (1.0 + self.global_step / 10.0), on_step=True, on_epoch=True)
        return loss


def test_a_metric_logged_while_training_is_recorded_every_step_and_forecast(quiet_trainer_kwargs):
    recorder = Recorder()
    bundle = Curvecast(monitor="train_acc", mode="max", forecast_every=10, background=False, forecast_budget=None,
                       actuators=[recorder])  # fmt: skip
    pl.Trainer(max_steps=40, callbacks=[bundle], **quiet_trainer_kwargs).fit(LogsTrainAcc(), loader(n=320))
    series = bundle.history.series("train_acc")
    np.testing.assert_array_equal(series.steps, np.arange(40))
    np.testing.assert_allclose(series.values, 1.0 - 0.5 / (1.0 + np.arange(40) / 10.0), rtol=1e-6)
    assert [r.step for r in recorder.reports] == [15, 23, 31, 39]  # as the training loss: see above
    assert all(r.monitor == "train_acc" for r in recorder.reports)


def test_a_monitor_never_logged_is_a_warning_at_the_end_naming_what_is(quiet_trainer_kwargs):
    bundle = Curvecast(forecast_budget=None, monitor="val_accuracy", background=False)
    trainer = pl.Trainer(max_epochs=1, callbacks=[bundle], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match=r"never logged in this run.*one of the logged metrics \(`train_acc"):
        trainer.fit(LogsTrainAcc(), loader(n=64))
    assert trainer.global_step == 8  # the run itself went to its end


def test_a_training_step_returning_nothing_is_told_once(quiet_trainer_kwargs, monkeypatch):

    class ReturnsNothing(TinyRegression):
        def training_step(self, batch, batch_idx):
            super().training_step(batch, batch_idx)
    bundle = Curvecast(forecast_budget=None, background=False)
    trainer = pl.Trainer(max_epochs=2, callbacks=[bundle], **quiet_trainer_kwargs)
    with pytest.warns(CurvecastWarning, match="training_step returned no loss") as caught:
        trainer.fit(ReturnsNothing(manual=True), loader(n=64))
    assert sum("training_step returned no loss" in str(w.message) for w in caught) == 1


@pytest.mark.parametrize(
    ("part", "damage"),
    [("watch", {"instability": "garbage"}), ("gradient_noise", {"version": 7}), ("throughput", None),
     ("early_stopping", {"rule": {"version": 1, "wait": "three"}})],
)  # fmt: skip
def test_one_damaged_part_starts_afresh_alone_and_the_history_survives(part, damage, monkeypatch):
    first = Curvecast(forecast_budget=None, early_stopping=True)
    for step in range(50):
        first.history.append("loss", step, 1.0 / (step + 1))
    state = first.state_dict()
    state[part] = damage
    second = Curvecast(forecast_budget=None, early_stopping=True)
    with pytest.warns(CurvecastWarning, match=f"state of '{part}' could not be restored"):
        second.load_state_dict(state)
    np.testing.assert_array_equal(second.history.series("loss").values, first.history.series("loss").values)


def test_a_resume_from_an_earlier_checkpoint_never_writes_a_step_twice(tmp_path):
    """The first fit went on to step 40 past its checkpoint at 20; the resumed one starts at 20 in the same run."""
    def trainer(max_steps, callbacks):
        return _trainer_into_one_tensorboard_run(tmp_path, max_steps, callbacks)

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
    trainer(40, [Curvecast(forecast_every=10, background=False, forecast_budget=None), checkpoint]).fit(
        TinyRegression(lr=0.02), loader(n=640)
    )
    early = str(tmp_path / "ckpt" / "epoch=0-step=20.ckpt")
    resumed = Curvecast(forecast_every=10, background=False, forecast_budget=None)
    trainer(60, [resumed]).fit(TinyRegression(lr=0.02), loader(n=640), ckpt_path=early)
    for tag in ("curvecast/loss", "curvecast/forecast/final", "curvecast/lr"):
        steps = _steps_in_write_order(tmp_path / "run" / "fixed", tag)
        assert steps == sorted(set(steps)), f"{tag} has a step written twice or out of order"
    assert _steps_in_write_order(tmp_path / "run" / "fixed", "curvecast/loss") == list(range(60))


def test_a_pickled_bundle_trains_as_the_original(quiet_trainer_kwargs):
    """A spawned DDP worker gets the bundle pickled: its per-step hooks are looked up again there."""
    import pickle

    copy = pickle.loads(pickle.dumps(Curvecast(forecast_budget=None, background=False)))
    assert {name: len(hooks) for name, hooks in copy._hooks.items()} == {
        name: len(hooks) for name, hooks in Curvecast()._hooks.items()
    }
    trainer = pl.Trainer(max_steps=9, callbacks=[copy], **quiet_trainer_kwargs)
    trainer.fit(TinyRegression(), loader())
    assert copy.history.num_points("loss") == 9
    assert copy.history.num_points("lr") == 9
