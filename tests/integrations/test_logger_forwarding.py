"""LoggerForwarder with any Lightning logger: forecast scalars as TensorBoard has them, choosing loggers, failures."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as L
import pytest
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.integrations import Alert, TensorBoardReporter
from curvecast.integrations.loggers import LoggerForwarder
from curvecast.integrations.loggers.selection import choose_loggers
from run_helpers import read_events, tiny_trainer
from tiny_models import CurveModule

STEPS, SPIKE, NAN = 240, 150, 200
ALERTS = [("spike", SPIKE, "warning"), ("early_stop", NAN, "warning"), ("nonfinite", NAN, "critical")]
FORECAST_TAGS = [f"curvecast/forecast/{n}" for n in ("final", "final_lo", "final_hi", "prob_target", "step_to_target")]


def bundle() -> Curvecast:
    """Forecasts every 20 steps toward a target; with the run below, a spike alert and a stop on a NaN loss (no
    advice: whether this tiny run waits on data depends on the machine)."""
    return Curvecast(target=2.4, forecast_every=20, background=False, forecast_budget=None, early_stopping=True,
                     advice=False)  # fmt: skip


def run(tmp_path: Path, forwarder: LoggerForwarder, *loggers) -> tuple:
    """A run of CurveModule with a spike at step 150 and NaN from step 200, logging to TensorBoard and ``loggers``."""
    tensorboard = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = tiny_trainer(tmp_path, [bundle(), forwarder], STEPS, logger=[tensorboard, *loggers])
    trainer.fit(CurveModule(STEPS, spike_at=SPIKE, nan_from=NAN))
    return trainer, read_events(tensorboard.log_dir)


def csv_rows(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_forecast_scalars_reach_a_csv_logger_as_tensorboard_has_them(tmp_path):
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    forwarder = LoggerForwarder()
    trainer, events = run(tmp_path, forwarder, csv_logger)
    assert trainer.global_step == NAN + 1  # stopped at the NaN, the forecasts and the stop forwarded before
    rows = csv_rows(csv_logger)
    for tag in FORECAST_TAGS:
        written = [(e.step, e.value) for e in events.Scalars(tag)]
        sent = [(int(r["step"]), float(r[tag])) for r in rows if r.get(tag)]
        assert [step for step, _ in sent] == [step for step, _ in written], tag
        assert [value for _, value in sent] == pytest.approx([value for _, value in written], rel=1e-6), tag
    assert len(events.Scalars("curvecast/forecast/final")) >= 5
    assert [int(r["step"]) for r in rows if r.get("curvecast/early_stopping/stopped")] == [NAN]
    # The TensorBoard logger curvecast writes to got nothing twice.
    steps = [e.step for e in events.Scalars("curvecast/forecast/final")]
    assert steps == sorted(set(steps))
    # The alerts a CSV file cannot show are still kept by the forwarder, once each, in TensorBoard's order.
    assert [(a.kind, a.step, a.severity) for a in forwarder.alerts] == ALERTS


class FailingCSVLogger(CSVLogger):
    """A CSVLogger whose disk is full for curvecast's metrics (Lightning's own still go through)."""

    def log_metrics(self, metrics, step=None):
        if any(name.startswith("curvecast/") for name in metrics):
            raise OSError(28, "No space left on device")
        super().log_metrics(metrics, step)


def test_a_failing_logger_is_one_warning_and_the_others_and_the_run_go_on(tmp_path):
    failing = FailingCSVLogger(str(tmp_path), name="failing")
    healthy = CSVLogger(str(tmp_path), name="healthy")
    with pytest.warns(CurvecastWarning) as caught:
        trainer, events = run(tmp_path, LoggerForwarder(), failing, healthy)
    assert trainer.global_step == NAN + 1
    about_it = [str(w.message) for w in caught if "FailingCSVLogger" in str(w.message)]
    assert len(about_it) == 1, about_it  # failed at every forecast, told once
    assert "No space left on device" in about_it[0]
    sent = [int(r["step"]) for r in csv_rows(healthy) if r.get("curvecast/forecast/final")]
    assert sent == [e.step for e in events.Scalars("curvecast/forecast/final")]


def test_loggers_are_chosen_by_name_class_or_object_and_curvecasts_tensorboard_is_left_out(tmp_path):
    tensorboard = TensorBoardLogger(str(tmp_path), name="tb")
    first, second = CSVLogger(str(tmp_path), name="a"), CSVLogger(str(tmp_path), name="b")
    trainer = SimpleNamespace(loggers=[tensorboard, first, second])
    assert choose_loggers(trainer, "all") == ([first, second], [])
    assert choose_loggers(trainer, ("CSV",)) == ([first, second], [])
    assert choose_loggers(trainer, ("csvlogger", CSVLogger)) == ([first, second], [])
    assert choose_loggers(trainer, (second, "mlflow")) == ([second], ["mlflow"])
    assert choose_loggers(trainer, ("tensorboard",)) == ([], ["tensorboard"])
    # A name matches either Lightning flavour's class; a class, only its own flavour's.
    unified = L.loggers.CSVLogger(str(tmp_path), name="c")
    assert choose_loggers(SimpleNamespace(loggers=[unified]), ("csv", CSVLogger)) == ([unified], [CSVLogger])
    # A second TensorBoard logger is not the one curvecast writes to: it may be chosen.
    other = TensorBoardLogger(str(tmp_path), name="other")
    assert choose_loggers(SimpleNamespace(loggers=[tensorboard, other]), ("tensorboard",)) == ([other], [])


def test_a_choice_that_matches_no_logger_is_said_once_and_the_run_goes_on(tmp_path):
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    with pytest.warns(CurvecastWarning, match=r"loggers=\['mlflow'\] matches none of the Trainer's loggers"):
        trainer, _ = run(tmp_path, LoggerForwarder(["mlflow", "csv"]), csv_logger)
    assert trainer.global_step == NAN + 1
    assert any(r.get("curvecast/forecast/final") for r in csv_rows(csv_logger))


def test_a_forwarder_without_curvecast_says_so(tmp_path):
    trainer = tiny_trainer(tmp_path, [LoggerForwarder()], 5, logger=CSVLogger(str(tmp_path)))
    with pytest.warns(CurvecastWarning, match="the Trainer has no Curvecast callback"):
        trainer.fit(CurveModule(5))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loggers": "wandb"}, ValueError, r"a name goes in a list: loggers=\['wandb'\]"),
        ({"loggers": []}, ValueError, "but got an empty list"),
        ({"loggers": CSVLogger(".")}, TypeError, "but got CSVLogger .a logger goes in a list"),
        ({"loggers": [3]}, TypeError, "Expected each entry of `loggers` to be a Lightning logger"),
        ({"loggers": [" "]}, ValueError, "Expected each name in `loggers` to be a logger's name"),
        ({"interval": 1.0}, ValueError, r"Expected `interval` to lie in \(0, 1\)"),
        ({"min_severity": "debug"}, ValueError, "Expected `min_severity` to be one of"),
        ({"max_alerts": 0}, ValueError, "Expected `max_alerts` to be a positive int"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        LoggerForwarder(**kwargs)


def test_alerts_are_sent_once_above_the_severity_floor():
    forwarder = LoggerForwarder(min_severity="warning")
    spike = Alert("spike", 10, "warning", "loss spiked at step 10.")
    forwarder._take(spike)
    forwarder._take(Alert("spike", 10, "warning", "loss spiked at step 10."))  # the same alert from the report
    forwarder._take(Alert("spike", 12, "info", "a small spike."))
    forwarder._take(Alert("spike", 10, "critical", "loss spiked at step 10, again."))  # an escalation is news
    assert [(a.step, a.severity) for a in forwarder._pending] == [(10, "warning"), (10, "critical")]


def test_curvecast_loggers_builds_the_forwarder_last_of_its_actuators(tmp_path):
    assert Curvecast().logger_forwarder is None
    everything = Curvecast(loggers=True, tensorboard=TensorBoardReporter(interval=0.9))
    assert everything.logger_forwarder.loggers == "all"
    assert everything.logger_forwarder.interval == 0.9  # the band every logger shows is TensorBoard's
    configured = LoggerForwarder(["mlflow"], min_severity="warning")
    assert Curvecast(loggers=configured).logger_forwarder is configured
    with pytest.raises(ValueError, match=r"a name goes in a list: loggers=\['wandb'\]"):
        Curvecast(loggers="wandb")

    csv_logger = CSVLogger(str(tmp_path), name="csv")
    curvecast = Curvecast(target=2.4, forecast_every=20, background=False, forecast_budget=None, advice=False,
                          loggers=["csv"])  # fmt: skip
    assert curvecast.actuators[-1] is curvecast.logger_forwarder
    tensorboard = TensorBoardLogger(str(tmp_path), name="tb")
    tiny_trainer(tmp_path, [curvecast], 100, logger=[tensorboard, csv_logger]).fit(CurveModule(100))
    sent = [int(r["step"]) for r in csv_rows(csv_logger) if r.get("curvecast/forecast/final")]
    assert sent == [e.step for e in read_events(tensorboard.log_dir).Scalars("curvecast/forecast/final")]
    assert len(sent) >= 3
