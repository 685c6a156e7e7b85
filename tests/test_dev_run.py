"""``Trainer(fast_dev_run=...)``: Lightning runs a few batches to check the code, with the user's loggers swapped for
stand-ins. curvecast still watches, but says nothing about the loggers or the run's length that only the dry run has."""

from __future__ import annotations

import logging
import warnings

import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from run_helpers import quiet_kwargs
from tiny_models import LogsValLoss, loader


@pytest.mark.parametrize("fast_dev_run", [True, 7])
def test_fast_dev_run_gives_no_advice_for_the_dry_run(tmp_path, caplog, fast_dev_run):
    bundle = Curvecast("val_loss", early_stopping=True, background=False)
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="tb")  # the user's: Lightning silences it for the run
    trainer = pl.Trainer(callbacks=[bundle], **quiet_kwargs(tmp_path, logger=logger, fast_dev_run=fast_dev_run))
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(LogsValLoss(), loader(n=160))
    assert bundle.history.num_points("val_loss") == 1  # it watched the dry run
    ours = [str(w.message) for w in caught if issubclass(w.category, CurvecastWarning)]
    # Before: "the Trainer has no TensorBoardLogger ... add `logger=TensorBoardLogger(...)`" to a user who has one.
    assert not [m for m in ours if "TensorBoardLogger" in m]
    # Before: "this run validates about 1 times ... Validate more often" of a run cut to one validation by Lightning.
    assert not [r for r in caplog.records if "validates about" in r.getMessage()]


def test_without_a_logger_the_dry_run_still_says_so(tmp_path, caplog):
    trainer = pl.Trainer(callbacks=[Curvecast(background=False)], **quiet_kwargs(tmp_path, fast_dev_run=True))
    with caplog.at_level(logging.INFO, logger="curvecast"):  # logger=False: nothing was silenced, nothing to fix
        trainer.fit(LogsValLoss(), loader(n=160))
    assert [r.levelno for r in caplog.records if "the Trainer has no logger" in r.getMessage()] == [logging.INFO]
