"""A validation monitor that this run will log too few times for a forecast is said so once, at the start."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from tiny_models import LogsValLoss, loader


def _said(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "a forecast needs" in r.getMessage()]


@pytest.mark.parametrize(("trainer_kwargs", "said"), [
    ({"max_epochs": 4}, 4),  # one validation per epoch: 4 points
    ({"max_epochs": 4, "val_check_interval": 0.25}, None),  # 16 points
    ({"max_steps": 80, "check_val_every_n_epoch": None, "val_check_interval": 10}, None),  # 8 points
    ({"max_steps": 80, "check_val_every_n_epoch": None, "val_check_interval": 20}, 4),  # 4 points
    # `max_steps` ends the run inside an epoch that validates too: 4 points in the first, 2 in the second.
    ({"max_steps": 30, "val_check_interval": 5}, None),
    ({"max_steps": 35, "val_check_interval": 10}, 3),  # 2 points, then 1 in the 15 steps of the second epoch
    ({"max_steps": 20, "check_val_every_n_epoch": None, "val_check_interval": 20}, 1),  # once: not "about 1 times"
    ({"max_steps": 70, "val_check_interval": 10, "check_val_every_n_epoch": 2}, 3),  # epoch 1: 2; epoch 3: 1 in 10
])  # fmt: skip
def test_too_few_validations_are_said_once_at_the_start(quiet_trainer_kwargs, caplog, trainer_kwargs, said):
    bundle = Curvecast("val_loss", background=False, forecast_budget=None)
    trainer = pl.Trainer(callbacks=[bundle], **trainer_kwargs, **quiet_trainer_kwargs)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(LogsValLoss(), loader(n=160))  # 20 batches an epoch
    messages = _said(caplog)
    assert len(messages) == int(said is not None)
    if said is not None:
        times = "once" if said == 1 else f"about {said} times"
        assert f"`val_loss` is logged at each validation, and this run validates {times}:" in messages[0]
        assert bundle.history.num_points("val_loss") == said
        assert bundle.last_report is None or not bundle.last_report.forecast.ok
    else:
        assert bundle.last_report is not None


def test_the_training_loss_is_never_short(quiet_trainer_kwargs, caplog):
    with caplog.at_level(logging.INFO, logger="curvecast"):
        pl.Trainer(max_steps=3, callbacks=[Curvecast(background=False)], **quiet_trainer_kwargs).fit(
            LogsValLoss(), loader(n=160)
        )
    assert not _said(caplog)
