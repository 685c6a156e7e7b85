"""A run watched by its training loss (the default) is told, once, when its validation loss climbs while the training
loss does not: overfitting. Never a stop, and not a word on the healthy wild logs' validation losses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from curvecast import Curvecast
from curvecast.live.stability_watch import StabilityWatch
from curvecast.series import TRAIN_LOSS, is_validation_loss
from tests.run_helpers import AnomalyRecorder, tiny_trainer
from tests.test_false_alarms import WILD, _columns, _is_training_loss, wild_only

# Logs whose validation loss does get worse (benchmarks/false_alarms.py says how): a collapse, a degraded run, and 112,
# whose val_loss overfits from epoch 4 (0.059 -> 0.099) while its training loss falls 0.044 -> 0.003.
NOT_HEALTHY = {"060", "092", "217"}


def _noisy_classes(n: int, seed: int) -> TensorDataset:
    draw = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=draw)
    w = torch.randn(20, 10, generator=torch.Generator().manual_seed(123))
    return TensorDataset(x, (x @ w + 0.8 * torch.randn(n, 10, generator=draw)).argmax(1))


class Memorises(pl.LightningModule):
    """A wide MLP on 96 examples of 10 noisy classes: its training loss falls to 1e-3 while its validation loss, after
    a best of about 1.57 at epoch 7, climbs past 2.3."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)

    def train_dataloader(self):
        order = torch.Generator().manual_seed(0)
        return DataLoader(_noisy_classes(96, 0), batch_size=32, shuffle=True, generator=order)

    def val_dataloader(self):
        return DataLoader(_noisy_classes(300, 1), batch_size=300)


def test_an_overfitting_run_is_told_once_and_never_stopped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    recorder = AnomalyRecorder()
    bundle = Curvecast(actuators=[recorder], tensorboard=False, early_stopping=True)
    trainer = tiny_trainer(tmp_path, [bundle], -1, logger=False, max_epochs=50)
    trainer.fit(Memorises())
    assert trainer.global_step == 150  # ran to its end: overfitting is no divergence of the run
    assert bundle.stop is None
    val = [a for a in recorder.anomalies if a.series == "val_loss"]
    assert [a.severity for a in val if a.severity != "info"] == ["warning"]
    warned = next(a for a in val if a.severity == "warning")
    assert "overfits" in warned.message
    assert 'ModelCheckpoint(monitor="val_loss")' in warned.message
    assert "LR" not in warned.message  # no unstable run's advice
    assert warned.step < 100  # within the first two thirds of the run


def test_a_run_asked_to_overfit_is_not_told_it_overfits(tmp_path: Path) -> None:
    """``overfit_batches``: a user checks that the model can memorise a few batches; its validation loss climbing is
    what was asked for (it was warned at step 33: "val_loss got worse at each of its last 5 validations")."""
    torch.manual_seed(0)
    recorder = AnomalyRecorder()
    bundle = Curvecast(actuators=[recorder], tensorboard=False)
    trainer = tiny_trainer(tmp_path, [bundle], -1, logger=False, max_epochs=50, overfit_batches=3)
    trainer.fit(Memorises())
    assert trainer.global_step == 150
    assert bundle.history.series("val_loss").values[-1] > 1.5 * bundle.history.series("val_loss").values.min()
    assert [a for a in recorder.anomalies if a.series == "val_loss" and a.severity != "info"] == []


def _replay(path: Path) -> tuple[str, list]:
    """The log's longest training loss and first validation loss through a watch of the training loss, as live."""
    columns = _columns(path)
    train = max((p for n, _, p in columns if _is_training_loss(n)), key=len, default=[])
    name, val = next(((n, p) for n, _, p in columns if is_validation_loss(n)), (None, []))
    watch = StabilityWatch(TRAIN_LOSS, "min", pair_grad_norm=False)
    for step, series, value in sorted([(s, TRAIN_LOSS, v) for s, v in train] + [(s, name, v) for s, v in val]):
        watch.feed(series, step, value)
    return name, [a for a in watch.collect() if a.series == name]


@wild_only
def test_a_wild_log_that_overfits_is_told_so() -> None:
    name, found = _replay(WILD / "112.csv")
    assert name == "val_loss"
    assert [a.severity for a in found if a.severity != "info"] == ["warning"]
    assert "overfits" in found[0].message


@wild_only
def test_healthy_wild_logs_say_nothing_of_their_validation_loss() -> None:
    logs = [p for p in sorted(WILD.glob("*.csv")) if p.stem not in NOT_HEALTHY | {"112"}]
    replayed = [(p.stem, *_replay(p)) for p in logs]
    with_both = [r for r in replayed if r[1] is not None]
    assert len(with_both) >= 35  # logs with a training and a validation loss
    assert [(stem, a.step, a.message) for stem, _, found in with_both for a in found] == []


@wild_only
def test_the_watch_resumes_from_a_checkpointed_state() -> None:
    columns = _columns(WILD / "112.csv")
    train = next(p for n, _, p in columns if n == "train_loss")
    val = next(p for n, _, p in columns if n == "val_loss")
    feeds = sorted([(s, TRAIN_LOSS, v) for s, v in train] + [(s, "val_loss", v) for s, v in val])
    split = len(feeds) // 2
    whole, first, second = (StabilityWatch(TRAIN_LOSS, "min", pair_grad_norm=False) for _ in range(3))
    for step, series, value in feeds:
        whole.feed(series, step, value)
    for step, series, value in feeds[:split]:
        first.feed(series, step, value)
    second.load_state_dict(first.state_dict())
    for step, series, value in feeds[split:]:
        second.feed(series, step, value)
    expected = [(a.step, a.severity) for a in whole.collect() if a.series == "val_loss"]
    assert [step for step, _ in expected if step < feeds[split][0]]  # told before the split and after it
    assert [step for step, _ in expected if step > feeds[split][0]]
    told = [(a.step, a.severity) for watch in (first, second) for a in watch.collect() if a.series == "val_loss"]
    assert told == expected


def test_a_damaged_state_is_refused_and_changes_nothing() -> None:
    watch = StabilityWatch(TRAIN_LOSS, "min", pair_grad_norm=False)
    for step in range(40):
        watch.feed(TRAIN_LOSS, step, 1.0 / (1 + step))
        watch.feed("val_loss", step, 1.0 / (1 + step))
    state = watch.state_dict()
    before = watch.state_dict()
    state["overfit"] = dict(state["overfit"], warned="yes")
    with pytest.raises(TypeError, match="warned"):
        watch.load_state_dict(state)
    assert watch.state_dict() == before


@pytest.mark.parametrize(
    ("name", "is_loss"),
    [("val_loss", True), ("val/loss", True), ("eval_loss", True), ("valid_loss_epoch", True), ("val_acc", False),
     ("train_loss", False), ("interval_loss", False), ("curvecast/val_loss", False)],
)  # fmt: skip
def test_which_series_read_as_a_validation_loss(name: str, is_loss: bool) -> None:
    assert is_validation_loss(name) is is_loss


def test_a_run_watched_by_its_validation_loss_is_told_once_per_event() -> None:
    """Monitored, the validation loss has its own detector (and its own words): no second watch repeats them."""
    watch = StabilityWatch("val_loss", "min", pair_grad_norm=False)
    assert watch.overfit is None
    train = [2.0 * math.exp(-step / 400.0) + 0.05 for step in range(2000)]
    val = [0.11 - 0.0104 * k for k in range(6)] + [0.06 + 0.04 * k / 13 for k in range(14)]
    for step in range(2000):
        watch.feed(TRAIN_LOSS, step, train[step])
        if step % 100 == 99:
            watch.feed("val_loss", step, val[step // 100])
    found = [(a.kind, a.step) for a in watch.collect() if a.series == "val_loss"]
    assert found
    assert len(found) == len(set(found))


def _clusters(n: int, seed: int) -> TensorDataset:
    """10 Gaussian clusters, their centres drawn from ``seed`` as the examples are."""
    draw = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(10, 32, generator=draw)
    y = torch.randint(0, 10, (n,), generator=draw)
    return TensorDataset(centres[y] + torch.randn(n, 32, generator=draw), y)


class WorseFromTheFirstEpoch(Memorises):
    """Validated on clusters it never trains on (as a fine-tuning run that overfits from its first epoch): its
    training loss falls to about 0.01 while its validation loss climbs at every epoch, from about 2.4 to 3.5."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 10))

    def train_dataloader(self):
        return DataLoader(_clusters(512, 0), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))

    def val_dataloader(self):
        return DataLoader(_clusters(256, 100), batch_size=256)


def test_a_validation_loss_climbing_from_its_first_epoch_is_told(tmp_path: Path) -> None:
    # Logged once an epoch, every three of its points hold an epoch's start: taken for a step at an epoch's start (a
    # curriculum stage), the climb was never confirmed, and the run said nothing.
    torch.manual_seed(0)
    recorder = AnomalyRecorder()
    bundle = Curvecast(actuators=[recorder], tensorboard=False)
    trainer = tiny_trainer(tmp_path, [bundle], -1, logger=False, max_epochs=10)
    trainer.fit(WorseFromTheFirstEpoch())
    val = bundle.history.series("val_loss").values
    assert all(b > a for a, b in zip(val, val[1:], strict=False))  # worse at every epoch
    assert val[-1] > 1.3 * val[0]
    warned = [a for a in recorder.anomalies if a.series == "val_loss" and a.severity == "warning"]
    assert len(warned) == 1
    assert "overfits" in warned[0].message


def test_a_non_finite_validation_loss_ends_the_count_and_the_state_still_restores() -> None:
    watch = StabilityWatch(TRAIN_LOSS, "min", pair_grad_norm=False)
    for step, value in enumerate([1.0, 1.1, 1.2, 1.3, math.nan]):  # checkpointed right after a NaN evaluation
        watch.feed(TRAIN_LOSS, step, 0.5)
        watch.feed("val_loss", step, value)
    restored = StabilityWatch(TRAIN_LOSS, "min", pair_grad_norm=False)
    restored.load_state_dict(watch.state_dict())
    assert restored.overfit.rises == 0
    assert restored.overfit.rise_from is None
    for step, value in enumerate([1.4, 1.5], start=5):  # the count starts again after the NaN
        restored.feed(TRAIN_LOSS, step, 0.5)
        restored.feed("val_loss", step, value)
    assert restored.overfit.rises == 1
    assert restored.overfit.rise_from == (5, 1.4)
