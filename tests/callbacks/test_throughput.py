"""Throughput inside real Trainers: time attribution on a simulated clock, FLOPs, logged names, state."""

from __future__ import annotations

import csv

import lightning.pytorch as lp
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sim_clock import SimClock
from torch import nn

from curvecast.callbacks.measures.flops import precision_dtype
from curvecast.callbacks.measures.throughput_stats import percentile, straggler
from curvecast.callbacks.throughput import Throughput
from run_helpers import tiny_trainer

DATA_TIME, STEP_TIME, VAL_TIME = 0.02, 0.03, 0.2  # simulated seconds


class SlowData(torch.utils.data.Dataset):
    def __init__(self, n: int, seconds: float, clock: SimClock | None) -> None:
        self.x = torch.randn(n, 8)
        self.seconds = seconds
        self.clock = clock

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]

    def collate(self, rows):
        if self.clock is not None:
            self.clock.advance(self.seconds)  # one batch takes this long to load (num_workers=0: main process)
        return torch.stack(rows)


def make_mlp(pl_, data_time=0.0, step_time=0.0, val_time=0.0, batch_size=4, clock=None):
    """An MLP whose data loading, training step and validation step take the given (simulated) seconds."""

    def spend(seconds):
        if clock is not None:
            clock.advance(seconds)

    class MLP(pl_.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

        def training_step(self, batch, batch_idx):
            spend(step_time)
            return self.net(batch).square().mean()

        def validation_step(self, batch, batch_idx):
            spend(val_time)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self):
            data = SlowData(64, data_time, clock)
            return torch.utils.data.DataLoader(data, batch_size=batch_size, collate_fn=data.collate)

        def val_dataloader(self):
            data = SlowData(4, 0.0, clock)
            return torch.utils.data.DataLoader(data, batch_size=4, collate_fn=data.collate)

    return MLP()


def test_time_is_attributed_to_data_compute_and_not_validation(tmp_path):
    clock = SimClock()
    tp = Throughput(log_every_n_steps=100)
    tp.clock = clock
    trainer = tiny_trainer(tmp_path, [tp], 6, logger=False, accumulate_grad_batches=2, val_check_interval=4,
                           limit_val_batches=1)  # fmt: skip
    trainer.fit(make_mlp(pl, DATA_TIME, STEP_TIME, VAL_TIME, clock=clock))
    assert len(tp.timings) == 5  # the first step is warm-up
    waits = [s.data_wait for s in tp.timings.steps]
    computes = [s.compute for s in tp.timings.steps]
    # two micro-batches per step; the clock's ticks add at most a few milliseconds
    assert all(2 * DATA_TIME <= w < 2 * DATA_TIME + 0.005 for w in waits), waits
    assert all(2 * STEP_TIME <= c < 2 * STEP_TIME + 0.005 for c in computes), computes
    assert max(waits) < VAL_TIME  # validation ran twice and is not counted as waiting for data
    assert all(s.samples == 8 for s in tp.timings.steps)
    assert tp.history.series("throughput/step_time").steps.tolist() == [1, 2, 3, 4, 5]
    assert tp.metrics["samples_per_sec"] == pytest.approx(8 / np.median([s.total for s in tp.timings.steps]), rel=0.05)
    assert tp.metrics["data_wait_fraction"] == pytest.approx(DATA_TIME / (DATA_TIME + STEP_TIME), abs=0.05)


def test_curvecasts_own_work_between_batches_is_not_data_wait(tmp_path):
    """An actuator taking 0.5 s after every step (a slow TensorBoard write) must not make the run look data bound."""
    from curvecast import Actuator, Curvecast

    clock = SimClock()

    class SlowActuator(Actuator):
        def on_report(self, trainer, pl_module, report):
            clock.advance(0.5)

    tp = Throughput(log_every_n_steps=100)
    tp.clock = clock
    bundle = Curvecast(forecast_every=1, background=False, throughput=tp, gradient_noise=False, tensorboard=False,
                       alerts=False, advice=False, actuators=[SlowActuator()])  # fmt: skip
    trainer = tiny_trainer(tmp_path, [bundle], 8, logger=False)
    trainer.fit(make_mlp(pl, DATA_TIME, STEP_TIME, clock=clock))
    waits = [s.data_wait for s in tp.timings.steps]
    assert len(waits) == 7
    assert all(DATA_TIME <= w < DATA_TIME + 0.005 for w in waits), waits
    assert tp.metrics["data_wait_fraction"] < 0.5


def test_flops_items_mfu_and_logged_names(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    module = make_mlp(lp, batch_size=4)
    expected_fwd = 2 * 4 * (8 * 16 + 16 * 1)
    tp = Throughput(items_fn=lambda batch: (batch > 0).sum(), peak_flops_per_sec=1e9)
    logger = CSVLogger(tmp_path, name="run")
    trainer = tiny_trainer(tmp_path, [tp], 6, logger=logger, flavour=lp, log_every_n_steps=3)
    trainer.fit(module)
    # forward + backward: the first layer needs no input gradient, so less than 3x the forward
    assert 2 * expected_fwd < tp.flops_per_batch < 3 * expected_fwd
    assert tp.metrics["mfu"] == pytest.approx(tp.metrics["flops_per_sec"] / 1e9)
    assert tp.metrics["items_per_sec"] > tp.metrics["samples_per_sec"]  # about 4 positive features per sample
    with open(f"{logger.log_dir}/metrics.csv") as handle:
        rows = {row["step"]: row for row in csv.DictReader(handle)}
    for name in ("samples_per_sec", "items_per_sec", "step_time", "step_time_p90", "data_wait", "data_wait_fraction",
                 "compute_time", "optimizer_time", "flops_per_sec", "mfu"):
        assert rows["5"][f"curvecast/throughput/{name}"] != "", name
    assert tp.history.series("throughput/samples_per_sec").steps.tolist() == [2, 5]


def test_state_round_trip():
    tp = Throughput()
    tp.totals = {"steps": 3, "samples": 12, "seconds": 0.5}
    tp.flops_per_batch = 1234.0
    tp.history.append("throughput/step_time", 0, 0.1)
    copy = Throughput()
    copy.load_state_dict(tp.state_dict())
    assert copy.totals == tp.totals
    assert copy.flops_per_batch == 1234.0
    assert not copy.measure_flops
    assert copy.history.series("throughput/step_time").values.tolist() == [0.1]
    assert copy.state_dict() == tp.state_dict()


def test_percentile_matches_numpy_and_straggler_flag():
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert straggler([1.0, 1.05, 0.98, 1.02], ratio=1.2)[0] is False
    assert straggler([1.0, 1.6], ratio=1.2) == (True, 1, pytest.approx(1.6 / 1.3))


def test_precision_dtypes():
    assert precision_dtype("bf16-mixed") is torch.bfloat16
    assert precision_dtype("16-mixed") is torch.float16
    assert precision_dtype("32-true") is torch.float32
    assert precision_dtype(64) is torch.float64


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`straggler_ratio` to be above 1"):
        Throughput(straggler_ratio=1.0)
    with pytest.raises(ValueError, match="`log_every_n_steps` to be a positive int"):
        Throughput(log_every_n_steps=0)
    with pytest.raises(ValueError, match="version"):
        Throughput().load_state_dict({"version": 0})


def test_other_callbacks_between_batches_are_not_data_wait(tmp_path):
    """A callback after curvecast's (a progress bar, a checkpoint) taking 0.05 s per batch is neither data wait nor
    compute: only the fetch of the next batch is waiting for data."""
    clock = SimClock()

    class SlowBar(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.advance(0.05)

    tp = Throughput(log_every_n_steps=100)
    tp.clock = clock
    trainer = tiny_trainer(tmp_path, [tp, SlowBar()], 8, logger=False)
    trainer.fit(make_mlp(pl, DATA_TIME, STEP_TIME, clock=clock))
    waits = [s.data_wait for s in tp.timings.steps]
    assert all(DATA_TIME <= w < DATA_TIME + 0.005 for w in waits), waits
    assert all(0.05 <= s.between < 0.055 for s in tp.timings.steps)
    assert tp.metrics["data_wait_fraction"] == pytest.approx(DATA_TIME / (DATA_TIME + STEP_TIME + 0.05), abs=0.03)


def test_an_in_memory_dataset_is_never_data_bound(tmp_path):
    """A TensorDataset in memory behind a slow callback between batches is never data bound (its data-wait fraction
    stays under the advisor's threshold); the same run with a loader that takes a while per batch is."""
    from curvecast import Curvecast
    from curvecast.integrations.advice import HyperparameterAdvisor
    from curvecast.series import DATA_WAIT_FRACTION

    def data_wait_fractions(load_s: float) -> np.ndarray:
        clock = SimClock()
        x = torch.randn(256, 8)

        def collate(rows):
            clock.advance(load_s)  # 0 for a tensor in memory
            return torch.stack([r[0] for r in rows])

        class SlowBar(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                clock.advance(0.02)

        class Linear(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Linear(8, 1)

            def training_step(self, batch, batch_idx):
                clock.advance(0.01)
                return self.net(batch).square().mean()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

            def train_dataloader(self):
                data = torch.utils.data.TensorDataset(x)
                return torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate)

        tp = Throughput(log_every_n_steps=5)
        tp.clock = clock
        bundle = Curvecast(gradient_noise=False, throughput=tp, forecast_every=1000)
        tiny_trainer(tmp_path, [bundle, SlowBar()], 40, logger=False).fit(Linear())
        return bundle.history.series(DATA_WAIT_FRACTION).values

    threshold = HyperparameterAdvisor().data_wait_threshold
    in_memory = data_wait_fractions(0.0)
    assert len(in_memory) >= 5
    assert in_memory.max() < threshold, in_memory
    assert np.median(data_wait_fractions(0.03)) > 0.4
