"""What curvecast writes to a run's loggers: a failed write is a warning and the run finishes; nothing reaches a
CSVLogger unless a sensor is asked to log; TensorBoard output can be switched off entirely."""

from __future__ import annotations

import csv
import errno
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from curvecast import Curvecast
from curvecast.callbacks import GradientNoiseScale, Throughput
from curvecast.failsafe import CurvecastWarning
from curvecast.integrations import AlertLogger, TensorBoardReporter
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, decode
from run_helpers import read_events, tiny_trainer
from tiny_models import CurveModule, LogsItsLoss, TinyRegression, loader

STEPS = 60


class FullDiskForCurvecast(pl.Callback):
    """From the start of the fit, every event carrying a ``curvecast`` tag fails as a full disk does (ENOSPC), while
    Lightning's own events still go through: what curvecast adds is what no longer fits."""

    def on_fit_start(self, trainer, pl_module):
        file_writer = trainer.logger.experiment.file_writer
        write = file_writer.add_event

        def add_event(event, *args, **kwargs):
            if any(value.tag.startswith("curvecast") for value in event.summary.value):
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(event, *args, **kwargs)

        file_writer.add_event = add_event


def _fit(tmp_path: Path, bundle: Curvecast, logger, extra=()) -> pl.Trainer:
    trainer = tiny_trainer(tmp_path, [bundle, *extra], STEPS, logger=logger, log_every_n_steps=5)
    trainer.fit(LogsItsLoss(), loader(n=8 * STEPS))
    return trainer


def _tags(log_dir: Path) -> set[str]:
    tags = read_events(log_dir).Tags()
    return set(tags["scalars"]) | set(tags["tensors"])


def test_a_full_disk_is_one_warning_and_the_run_finishes(tmp_path, fresh_warnings):
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None, target=0.5)
    logger = TensorBoardLogger(tmp_path, name="run", version="fixed")
    with pytest.warns(CurvecastWarning) as caught:
        trainer = _fit(tmp_path, bundle, logger, [FullDiskForCurvecast()])
    assert trainer.global_step == STEPS
    assert sum(1 for r in bundle.reports if r.forecast is not None) >= 5  # each of them failed to write
    failures = [str(w.message) for w in caught if "could not write to TensorBoard" in str(w.message)]
    assert len(failures) == 1
    assert "No space left on device" in failures[0]
    assert "training goes on" in failures[0]
    tags = _tags(Path(logger.log_dir))
    assert "train_loss" in tags  # Lightning's own logging was untouched
    assert not [t for t in tags if t.startswith("curvecast")]


def test_a_thinned_series_keeps_its_spike_and_the_run_has_no_sub_run(tmp_path):
    """Reports about 50 steps apart with 8 points of the monitor each: the one-step spike (which even spacing steps
    over) is among those written, at its own value, and its anomaly carries that value for the tab."""
    module = CurveModule(200, spike_at=137)
    bundle = Curvecast(forecast_every=50, background=False, forecast_budget=None,
                       tensorboard=TensorBoardReporter(observed_points=8))  # fmt: skip
    logger = TensorBoardLogger(tmp_path, name="run", version="fixed")
    tiny_trainer(tmp_path, [bundle], 200, logger=logger, log_every_n_steps=25).fit(module)
    events = read_events(logger.log_dir)
    written = {e.step: e.value for e in events.Scalars("curvecast/loss")}
    assert len(written) <= 8 * len(bundle.reports) < 100  # thinned: 8 of each report's new points at most
    assert written[137] == pytest.approx(module.value(137), rel=1e-6)  # ten times its neighbours
    anomalies = decode(events.Tensors(EVENTS_TAG)[-1].tensor_proto.string_val[0])["anomalies"]
    spike = next(a for a in anomalies if a["kind"] == "spike")
    assert (spike["step"], spike["value"]) == (137, pytest.approx(module.value(137), rel=1e-6))
    assert [p for p in Path(logger.log_dir).iterdir() if p.is_dir()] == []  # no sub-run beside the run's file
    assert not [t for t in _tags(Path(logger.log_dir)) if t.startswith("curvecast/summary")]


def _csv_columns(logger: CSVLogger) -> list[str]:
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as handle:
        return next(csv.reader(handle))


def test_a_csv_gets_curvecast_columns_only_when_a_sensor_is_asked(tmp_path):
    default = CSVLogger(tmp_path, name="default")
    _fit(tmp_path, Curvecast(forecast_every=10, background=False), default)
    assert "train_loss" in _csv_columns(default)
    assert not [c for c in _csv_columns(default) if c.startswith("curvecast")]

    asked = CSVLogger(tmp_path, name="asked")
    bundle = Curvecast(forecast_every=10, background=False, gradient_noise=GradientNoiseScale(log_metrics=True),
                       throughput=Throughput(log_metrics=True))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CurvecastWarning)  # no per-example layers to measure: not what is tested
        _fit(tmp_path, bundle, asked)
    columns = _csv_columns(asked)
    assert {"curvecast/grad_norm", "curvecast/throughput/step_time"} <= set(columns)
    assert not [c for c in columns if c.startswith("curvecast/forecast")]  # forecasts go to TensorBoard only


def test_tensorboard_output_can_be_switched_off(tmp_path):
    bundle = Curvecast(forecast_every=10, background=False, tensorboard=False)
    assert not bundle.alerts.tensorboard  # alerts and advice reach Python logging alone
    assert not bundle.advice.tensorboard
    assert Curvecast(tensorboard=False, alerts=AlertLogger(tensorboard=True)).alerts.tensorboard  # an instance rules
    logger = TensorBoardLogger(tmp_path, name="run", version="fixed")
    _fit(tmp_path, bundle, logger)
    assert bundle.last_report is not None  # it forecast all along ...
    tags = _tags(Path(logger.log_dir))
    assert "train_loss" in tags
    assert not [t for t in tags if t.startswith("curvecast")]  # ... and wrote nothing
    assert [p.name for p in Path(logger.log_dir).iterdir() if p.is_dir()] == []


@pytest.mark.slow
def test_a_run_of_known_length_writes_a_bounded_number_of_points_per_series(tmp_path):
    steps = 2000
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None)
    logger = TensorBoardLogger(tmp_path, name="run", version="fixed")
    tiny_trainer(tmp_path, [bundle], steps, logger=logger).fit(TinyRegression(lr=0.01), loader(n=8 * steps))
    accumulator = read_events(logger.log_dir)
    # 200 reports: 10 new steps each, all of the monitor's (up to 2000 points in a run of 2000 steps) ...
    assert [e.step for e in accumulator.Scalars("curvecast/loss")] == list(range(steps))
    # ... and 5 of each other series' per report, but no more than one per 5 steps (a run's 400th part): about 400
    # points, not 1000.
    lr = [e.step for e in accumulator.Scalars("curvecast/lr")]
    assert 350 <= len(lr) <= steps // 5 + 5


def test_a_stop_writes_nothing_to_tensorboard_when_it_is_switched_off(tmp_path):
    bundle = Curvecast(forecast_every=5, background=False, tensorboard=False, early_stopping=True)
    logger = TensorBoardLogger(tmp_path, name="run", version="fixed")
    trainer = tiny_trainer(tmp_path, [bundle], 40, logger=logger)
    trainer.fit(CurveModule(curve=[1.0 / (1 + k) for k in range(20)] + [float("nan")] * 20))

    assert bundle.early_stopping.stop_request is not None  # the NaN stopped the run ...
    assert trainer.global_step < 40
    assert not [t for t in _tags(Path(logger.log_dir)) if t.startswith("curvecast")]  # ... and no stop was written
