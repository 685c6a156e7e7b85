import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from curvecast import Curvecast
from run_helpers import tiny_trainer
from tiny_models import LeaveTogether, TinyRegression, loader


class CheckHistoryOnEveryRank(pl.Callback):
    """Runs inside each DDP worker: the bundle's history there must hold the loss averaged over ranks."""

    def __init__(self, bundle: Curvecast) -> None:
        self.bundle = bundle

    def on_train_end(self, trainer, pl_module):
        raw = torch.tensor(pl_module.raw_losses[: trainer.global_step])
        mean_over_ranks = pl_module.all_gather(raw).mean(dim=0).numpy()
        series = self.bundle.history.series("loss")
        np.testing.assert_array_equal(series.steps, np.arange(trainer.global_step))
        np.testing.assert_allclose(series.values, mean_over_ranks, rtol=1e-5)
        # Rank 0 forecasts; the others only record.
        assert (self.bundle.last_report is not None) == trainer.is_global_zero


@pytest.mark.ddp
@pytest.mark.timeout(240)
def test_every_rank_records_the_rank_averaged_loss_and_rank_zero_forecasts(tmp_path, capfd):
    bundle = Curvecast(forecast_budget=None, forecast_every=4, background=False)
    callbacks = [bundle, CheckHistoryOnEveryRank(bundle), LeaveTogether()]
    # Flushes every 3 steps: 0-2, 3-5, and the rest at the end of training.
    csv = pl.loggers.CSVLogger(str(tmp_path))  # a logger curvecast's forecasts do not go to: warned
    trainer = tiny_trainer(tmp_path, callbacks, 8, logger=csv, log_every_n_steps=3, devices=2, strategy="ddp_spawn")
    trainer.fit(TinyRegression(), loader(n=128))
    assert trainer.state.finished
    # Rank 0's worker warns that the CSVLogger gets no forecasts on its own stderr. Its stack holds no line of the
    # user's: the warning points at no file (spawn's `<string>`), not at multiprocessing's bootstrap under torch's
    # spawn.
    message = ": CurvecastWarning: curvecast: the Trainer's loggers (CSVLogger) get no forecasts"
    warned = [line.split(message)[0] for line in capfd.readouterr().err.splitlines() if message in line]
    assert len(warned) == 1
    assert ".py:" not in warned[0]
