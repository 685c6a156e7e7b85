"""ForecastLogger: a log line per forecast, the forecast in the progress bar, nothing in the loggers."""

from __future__ import annotations

import logging

import pytest
from pytorch_lightning.loggers import CSVLogger

from curvecast import Curvecast
from run_helpers import tiny_trainer
from tiny_models import LogsItsLoss, loader


def test_each_forecast_is_one_log_line_and_the_progress_bar_shows_it(tmp_path, caplog):
    bundle = Curvecast(forecast_every=20, background=False, forecast_budget=None, target=0.5)
    logger = CSVLogger(tmp_path, name="run")
    # 120 steps: the first forecasts of this noisy toy loss are too uncertain to make (ok=False, no log line).
    trainer = tiny_trainer(tmp_path, [bundle], 120, logger=logger, log_every_n_steps=5, enable_progress_bar=True)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(LogsItsLoss(), loader(n=960))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("curvecast step")]
    forecasts = [r for r in bundle.reports if r.forecast is not None and r.forecast.ok]
    assert len(lines) == len(forecasts) >= 3
    assert lines[0].startswith(f"curvecast step {forecasts[0].step}/120: loss ")
    assert "(80%: " in lines[0]
    assert "target 0.5: P=" in lines[0]
    last_in_a_batch_hook = forecasts[-2].forecast.final  # the final report comes in on_train_end: no bar there
    assert trainer.progress_bar_metrics["forecast"] == pytest.approx(last_in_a_batch_hook, rel=1e-6)
    with open(f"{logger.log_dir}/metrics.csv") as handle:
        columns = handle.readline().strip().split(",")
    assert "forecast" not in columns  # the progress bar only, never the user's logs
    assert "train_loss" in columns
    assert not [c for c in columns if c.startswith("curvecast/")]  # nor the sensors' measures


def test_without_a_progress_bar_the_forecast_is_a_log_line_alone(tmp_path, caplog):
    """No bar to show it in: the forecast is not handed to ``LightningModule.log`` (a millisecond of the training
    thread per forecast), and its line is logged as with a bar."""
    bundle = Curvecast(forecast_every=20, background=False, forecast_budget=None, target=0.5)
    trainer = tiny_trainer(tmp_path, [bundle], 120, logger=False, log_every_n_steps=5, enable_progress_bar=False)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(LogsItsLoss(), loader(n=960))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("curvecast step")]
    assert len(lines) == len([r for r in bundle.reports if r.forecast is not None and r.forecast.ok]) >= 3
    assert "forecast" not in trainer.progress_bar_metrics
