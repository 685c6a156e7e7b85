"""GradientNoiseScale and Throughput under 2-process DDP on CPU; the checks run inside the workers."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from gns_helpers import SeqModel, assert_squared_norm, per_example_grads, seq_data, seq_loss
from sim_clock import SimClock

from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.throughput import Throughput
from run_helpers import tiny_trainer
from tiny_models import LeaveTogether

SLOW_RANK_TIME = 0.05  # simulated seconds rank 1 spends on each batch


class SeqModule(pl.LightningModule):
    """Defined at module level: ddp_spawn pickles the module into the workers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = SeqModel()

    def training_step(self, batch, batch_idx):
        ids, y = batch
        return seq_loss(self.model(ids), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*seq_data(64)), batch_size=4)


class WorkerChecks(pl.Callback):
    """Per-rank (local) and all-reduced norms against torch.func on the gathered batches; agreement after training."""

    def __init__(self, gns: GradientNoiseScale, tp: Throughput) -> None:
        self.gns = gns
        self.tp = tp
        self.batch = None
        self.checked = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch = batch
        if trainer.global_rank == 1:
            self.tp.clock.advance(SLOW_RANK_TIME)  # rank 1 is slow before its forward pass

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        ids, y = self.batch
        all_ids = trainer.strategy.all_gather(ids).reshape(-1, ids.shape[1])
        all_y = trainer.strategy.all_gather(y).reshape(-1)
        model = pl_module.model
        local = torch.cat([g.flatten(1) for g in per_example_grads(model, seq_loss, ids, y).values()], dim=1)
        glob = torch.cat([g.flatten(1) for g in per_example_grads(model, seq_loss, all_ids, all_y).values()], dim=1)
        assert self.gns.active_source == "microbatch"
        assert_squared_norm(self.gns.last_small_sq, local.mean(0).square().sum())
        assert_squared_norm(self.gns.last_big_sq, glob.mean(0).square().sum())
        self.checked += 1

    def on_train_end(self, trainer, pl_module):
        assert self.checked == trainer.max_steps
        # the EMAs were averaged over ranks at the cadence: every rank holds the same state and estimate
        states = trainer.strategy.all_gather(self.gns.estimator.state_tensor())
        torch.testing.assert_close(states[0], states[1])
        assert self.gns.b_simple is not None
        assert self.gns.history.series("grad_norm").steps.tolist() == list(range(trainer.max_steps))
        assert self.tp.metrics["straggler"] == 1.0
        assert self.tp.metrics["slowest_rank"] == 1.0
        busy = [row[3] for row in self.tp.rank_metrics]
        assert busy[1] > busy[0] + 0.6 * SLOW_RANK_TIME


@pytest.mark.ddp
@pytest.mark.timeout(180)
def test_gns_and_throughput_under_two_process_ddp(tmp_path):
    gns = GradientNoiseScale(min_updates=2, norm_every_n_steps=1)  # the norm of every step, checked below
    tp = Throughput(straggler_ratio=1.2)
    tp.clock = SimClock()  # each worker gets its own copy
    callbacks = [gns, tp, WorkerChecks(gns, tp), LeaveTogether()]
    trainer = tiny_trainer(tmp_path, callbacks, 6, logger=False, log_every_n_steps=3, precision="64-true", devices=2,
                           strategy="ddp_spawn")  # fmt: skip
    trainer.fit(SeqModule())
