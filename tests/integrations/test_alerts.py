"""Alerts: logging levels, TensorBoard text never rewriting a step, AlertLogger de-duplication."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from pytorch_lightning.loggers import TensorBoardLogger

from curvecast.forecasting import Report
from curvecast.forecasting.anomalies import Anomaly
from curvecast.integrations import Alert, AlertLogger, publish_alert
from run_helpers import read_events, texts


def test_alerts_at_one_step_move_forward_instead_of_rewriting(tmp_path, caplog):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = SimpleNamespace(loggers=[logger])
    with caplog.at_level(logging.INFO, logger="curvecast"):
        publish_alert(trainer, Alert("spike", 10, "warning", "loss spiked at step 10."))
        publish_alert(trainer, Alert("advice/lr_too_high", 10, "info", "lower the LR.", source="advice"))
        publish_alert(trainer, Alert("nonfinite", 5, "critical", "loss became nan."))
    events = read_events(logger.log_dir)
    assert [e.step for e in events.Tensors("curvecast/alerts/text_summary")] == [10, 11, 12]
    assert "step 5" in texts(events)[2]  # the text keeps the step it is about
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO, logging.ERROR]


def test_alert_logger_publishes_each_anomaly_once_and_filters_severity(caplog):
    alerts = AlertLogger(min_severity="warning")
    spike = Anomaly("spike", 120, "warning", "loss spiked at step 120.")
    minor = Anomaly("spike", 130, "info", "small spike.")
    escalated = Anomaly("spike", 120, "critical", "loss spiked at step 120, again.")
    with caplog.at_level(logging.INFO, logger="curvecast"):
        alerts.on_report(None, None, Report(step=140, monitor="loss", anomalies=(spike, minor)))
        alerts.on_report(None, None, Report(step=160, monitor="loss", anomalies=(spike, escalated)))
    assert [(a.step, a.severity) for a in alerts.alerts] == [(120, "warning"), (120, "critical")]
    assert len(caplog.records) == 2


def test_an_info_anomaly_stays_off_the_console_but_reaches_tensorboard(tmp_path, caplog):
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    alerts = AlertLogger()
    minor = Anomaly("spike", 130, "info", "small spike.")
    with caplog.at_level(logging.INFO, logger="curvecast"):
        alerts.on_report(SimpleNamespace(loggers=[logger]), None, Report(step=140, monitor="loss", anomalies=(minor,)))
    assert caplog.records == []
    assert "small spike." in texts(read_events(logger.log_dir))[0]


def test_alert_validation():
    with pytest.raises(ValueError, match="Expected `severity` to be one of"):
        Alert("spike", 1, "fatal", "x")
    with pytest.raises(ValueError, match="Expected `min_severity` to be one of"):
        AlertLogger(min_severity="debug")


def test_names_from_the_run_are_escaped_in_the_markdown():
    alert = Alert("spike", 7, "warning", "val/<img src=x onerror=alert(1)> spiked & fell at step 7.")
    text = alert.markdown()
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt; spiked &amp; fell" in text
    assert Alert("a`b<i>", 1, "info", "m").markdown().startswith("**info** · `a'b&lt;i&gt;`")
