"""Resuming with another monitor keeps what does not depend on it, and says what was dropped."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from run_helpers import tiny_trainer
from tiny_models import LogsValLoss, loader


def _trainer(tmp_path, callbacks, max_steps) -> pl.Trainer:
    return tiny_trainer(tmp_path, callbacks, max_steps, logger=False, enable_checkpointing=True, val_check_interval=10)


def test_a_resume_with_another_monitor_keeps_the_history_and_says_what_was_dropped(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
    first = Curvecast(forecast_budget=None, background=False, early_stopping=True)  # the training loss
    _trainer(tmp_path, [first, checkpoint], 20).fit(LogsValLoss(), loader(n=320))
    before = first.history.series("loss")
    assert len(before) == 20

    second = Curvecast("val_loss", forecast_budget=None, background=False, early_stopping=True)
    with pytest.warns(CurvecastWarning, match=r"resumed with monitor='val_loss'.*kept the history.*with 'val_loss'"):
        _trainer(tmp_path, [second], 40).fit(LogsValLoss(), loader(n=320), ckpt_path=checkpoint.best_model_path)
    loss = second.history.series("loss")
    np.testing.assert_array_equal(loss.steps, np.arange(40))  # the 20 steps before the resume are kept
    np.testing.assert_array_equal(loss.values[:20], before.values)
    # The checkpoint at step 20 was saved before that step's validation: the resumed run validates next at 30.
    np.testing.assert_array_equal(second.history.series("val_loss").steps, [10, 30, 40])


def test_a_resume_with_the_same_monitor_says_nothing(tmp_path, recwarn):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
    _trainer(tmp_path, [Curvecast(forecast_budget=None, background=False), checkpoint], 20).fit(
        LogsValLoss(), loader(n=320)
    )
    second = Curvecast(forecast_budget=None, background=False)
    _trainer(tmp_path, [second], 40).fit(LogsValLoss(), loader(n=320), ckpt_path=checkpoint.best_model_path)
    assert len(second.history.series("loss")) == 40
    assert not [w for w in recwarn if "resumed with monitor" in str(w.message)]
