"""A run without a TensorBoardLogger is told where its forecasts go. Every such run was warned "add
`logger=TensorBoardLogger(...)` to see them": one whose forecasts went to its W&B or CSV logger through
``Curvecast(loggers="all")``, and one that turned logging off with ``logger=False``, too."""

from __future__ import annotations

import logging
import warnings

import lightning.pytorch as L

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from tests.tiny_models import TinyRegressionL, loader


def _fit(tmp_path, logger, caplog, **options) -> tuple[list[str], list[str]]:
    """The curvecast warnings and info lines of a short run with ``logger``."""
    trainer = L.Trainer(
        max_steps=40, logger=logger, callbacks=[Curvecast(forecast_budget=None, forecast_every=10, **options)],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(TinyRegressionL(), loader(n=64))
    warned = [str(w.message) for w in record if issubclass(w.category, CurvecastWarning)]
    return warned, [r.getMessage() for r in caplog.records]


def test_forecasts_sent_to_the_other_loggers_are_not_said_to_go_nowhere(tmp_path, caplog) -> None:
    csv = L.loggers.CSVLogger(str(tmp_path))
    warned, said = _fit(tmp_path, csv, caplog, loggers="all")
    assert not [w for w in warned if "get no forecasts" in w or "TensorBoardLogger" in w]
    metrics = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "curvecast/forecast/final" in metrics  # where they went


def test_other_loggers_that_get_no_forecasts_are_named_with_both_fixes(tmp_path, caplog) -> None:
    warned, _ = _fit(tmp_path, L.loggers.CSVLogger(str(tmp_path)), caplog)
    (told,) = [w for w in warned if "get no forecasts" in w]
    assert "(CSVLogger)" in told
    assert 'Curvecast(loggers="all")' in told
    assert "TensorBoardLogger" in told


def test_logging_turned_off_is_an_info_line(tmp_path, caplog) -> None:
    warned, said = _fit(tmp_path, False, caplog)
    assert not [w for w in warned if "logger" in w.lower()]
    assert [s for s in said if "the Trainer has no logger" in s] == [
        "curvecast: the Trainer has no logger: the forecasts and alerts go to the 'curvecast' logger only"
    ]


def test_fast_dev_run_says_nothing_of_loggers(tmp_path, caplog) -> None:
    # `fast_dev_run` silences the user's loggers: nothing to tell (as before).
    trainer = L.Trainer(fast_dev_run=2, callbacks=[Curvecast()], enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="curvecast"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(TinyRegressionL(), loader(n=64))
    assert not [w for w in record if "get no forecasts" in str(w.message)]
    assert not [r for r in caplog.records if "has no logger" in r.getMessage()]
