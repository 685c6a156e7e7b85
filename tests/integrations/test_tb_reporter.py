"""TensorBoardReporter and AlertLogger on a real Trainer: event files read back, and a live TensorBoard server."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import pytest
import pytorch_lightning as pl
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.util import tensor_util

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.integrations import AlertLogger, TensorBoardReporter
from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, decode
from run_helpers import read_events, texts, tiny_trainer
from tiny_models import CurveModule

STEPS = 240
SPIKE = 150
FORECAST_TAGS = {f"curvecast/forecast/{n}" for n in ("final", "final_lo", "final_hi", "prob_target", "step_to_target")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One tiny run with a spike at step 150, a reachable target, forecasts every 20 steps; returns its log dir."""
    tmp_path = tmp_path_factory.mktemp("tb")
    bundle = Curvecast(target=2.4, forecast_every=20, background=False, forecast_budget=None,
                       tensorboard=TensorBoardReporter(figures=True))  # fmt: skip
    assert sum(isinstance(a, TensorBoardReporter) for a in bundle.actuators) == 1
    assert sum(isinstance(a, AlertLogger) for a in bundle.actuators) == 1
    trainer = tiny_trainer(tmp_path, [bundle], STEPS, log_every_n_steps=1)
    trainer.fit(CurveModule(STEPS, spike_at=SPIKE))
    return Path(trainer.logger.log_dir)


def test_forecast_scalars_are_written_forward_only(run_dir):
    ea = read_events(run_dir)
    assert set(ea.Tags()["scalars"]) >= FORECAST_TAGS | {"curvecast/loss"}
    final = ea.Scalars("curvecast/forecast/final")
    steps = [e.step for e in final]
    assert len(steps) >= 5
    assert steps == sorted(set(steps)), "a forecast tag must never get two points at one step"
    lo = {e.step: e.value for e in ea.Scalars("curvecast/forecast/final_lo")}
    hi = {e.step: e.value for e in ea.Scalars("curvecast/forecast/final_hi")}
    for e in final:
        assert lo[e.step] <= e.value <= hi[e.step]
    # The loss floor is 2.0 and the target 2.4 is reached: the last forecasts say so.
    assert 1.8 < final[-1].value < 2.4
    assert ea.Scalars("curvecast/forecast/prob_target")[-1].value > 0.5
    observed = ea.Scalars("curvecast/loss")
    assert [e.step for e in observed] == list(range(STEPS))


def test_spike_alert_in_text(run_dir):
    ea = read_events(run_dir)
    alerts = texts(ea)
    spikes = [t for t in alerts if "`spike`" in t]
    assert spikes, alerts
    assert f"step {SPIKE}" in spikes[0]


def test_layout_figures_forecast_curves_and_summary(run_dir):
    ea = read_events(run_dir)
    layout = layout_pb2.Layout()
    layout.ParseFromString(tensor_util.make_ndarray(ea.Tensors("custom_scalars__config__")[0].tensor_proto).item())
    charts = [chart for category in layout.category for chart in category.chart]
    margin = [c for c in charts if c.HasField("margin")]
    assert margin[0].margin.series[0].value == "curvecast/forecast/final"
    assert margin[0].margin.series[0].lower == "curvecast/forecast/final_lo"
    assert "curvecast/forecast/figure" in ea.Tags()["images"]

    # Everything lives in the run itself (the forecast curves as data of the curvecast tab): no sub-run at all.
    assert [p.name for p in run_dir.iterdir() if p.is_dir()] == []
    documents = [(e.step, decode(e.tensor_proto.string_val[0])) for e in ea.Tensors(FORECAST_TAG)]
    assert ea.SummaryMetadata(FORECAST_TAG).plugin_data.plugin_name == "curvecast"
    # One curve per twentieth of the run at most (every 12 steps here, so each forecast, made every 20 steps) and
    # the final one.
    assert [step for step, _ in documents] == [*range(20, STEPS, 20), STEPS - 1]
    step, latest = documents[-1]
    assert latest["curve"]["steps"][0] == latest["last_step"] == step
    assert latest["curve"]["steps"][-1] == latest["horizon"] == STEPS
    assert latest["final"] == pytest.approx(ea.Scalars("curvecast/forecast/final")[-1].value)
    middle = documents[len(documents) // 2][1]["curve"]
    assert all(lo <= m <= hi for lo, m, hi in zip(middle["lo"], middle["mean"], middle["hi"], strict=True))
    assert middle["hi"][-1] > middle["lo"][-1]
    events = decode(ea.Tensors(EVENTS_TAG)[-1].tensor_proto.string_val[0])
    assert [a["step"] for a in events["anomalies"] if a["kind"] == "spike"] == [SPIKE]
    assert not [t for t in ea.Tags()["scalars"] if t.startswith("curvecast/summary/")]  # no charts repeating the tab


def test_live_tensorboard_server_serves_curvecast_tags(run_dir):
    from tensorboard import program

    tb = program.TensorBoard()
    # A blocking reload loads the logdir once before the server answers: no waiting or polling needed.
    tb.configure(
        argv=[None, "--logdir", str(run_dir.parent), "--host", "127.0.0.1", "--port", "0", "--load_fast", "false",
              "--reload_interval", "0", "--reload_task", "blocking"]
    )  # fmt: skip
    url = tb.launch()
    assert url.startswith("http://127.0.0.1:")

    def get(path: str):
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=30) as response:
            return json.loads(response.read())

    tags = get("/data/plugin/scalars/tags")
    run = run_dir.name
    assert set(tags[run]) >= FORECAST_TAGS
    assert sorted(tags) == [run]  # the run once: no sub-run
    points = get(f"/data/plugin/scalars/scalars?run={run}&tag=curvecast/forecast/final")
    written = read_events(run_dir).Scalars("curvecast/forecast/final")
    assert [p[1] for p in points] == [e.step for e in written]  # every forecast served, at its step, in order
    assert len(points) >= 5
    assert "curvecast" in json.dumps(get("/data/plugin/custom_scalars/layout"))


def test_no_tensorboard_logger_warns_once_and_still_logs(tmp_path, caplog, monkeypatch):
    bundle = Curvecast(forecast_budget=None, target=2.4, forecast_every=20, background=False)
    csv = pl.loggers.CSVLogger(str(tmp_path))
    trainer = tiny_trainer(tmp_path, [bundle], 200, logger=csv, log_every_n_steps=1)
    with caplog.at_level(logging.INFO, logger="curvecast"), pytest.warns(CurvecastWarning) as caught:
        trainer.fit(CurveModule(200, spike_at=150))
    # Ten forecasts went to no logger of the run's, and the user was told once (a warning, not also a log line).
    assert sum("get no forecasts" in str(w.message) for w in caught) == 1
    assert not any("get no forecasts" in r.getMessage() for r in caplog.records)
    assert any("spike" in r.getMessage() and "150" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 1.0}, "Expected `interval` to lie in"),
        ({"curve_every": 0}, "Expected `curve_every` to be a positive int"),
        ({"curve_points": 1}, "Expected `curve_points` to be at least 2"),
        ({"observed_points": 0}, "Expected `observed_points` to be a positive int"),
        ({"sensor_points": 0}, "Expected `sensor_points` to be a positive int"),
    ],
)
def test_reporter_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorBoardReporter(**kwargs)


def test_the_lr_and_the_sensors_measures_are_in_tensorboard(run_dir):
    accumulator = read_events(run_dir)
    assert {"curvecast/grad_norm", "curvecast/throughput/samples_per_sec"} <= set(accumulator.Tags()["scalars"])
    lr = accumulator.Scalars("curvecast/lr")
    # At most 5 points of each sensor's series per report (every 20 steps here), spread over the steps in between.
    steps = [e.step for e in lr]
    assert steps == sorted(set(steps))
    assert 5 * (STEPS // 20) <= len(steps) <= 5 * (STEPS // 20 + 2)
    assert steps[-1] == STEPS - 1
    assert all(e.value > 0 for e in lr)


def test_observed_points_written_grow_with_reports_not_steps(tmp_path):
    """A report every 500 steps writes at most `observed_points` points: a long run's event file stays small."""
    bundle = Curvecast(forecast_every=500, background=False, forecast_budget=None,
                       tensorboard=TensorBoardReporter(observed_points=50, figures=False))  # fmt: skip
    trainer = tiny_trainer(tmp_path, [bundle], 2000, log_every_n_steps=1)
    trainer.fit(CurveModule(2000))
    loss = read_events(Path(trainer.logger.log_dir)).Scalars("curvecast/loss")
    reports = len(bundle.reports)  # forecasts every 500 steps, and the anomaly reports between them
    assert reports < 20
    assert 150 <= len(loss) <= 50 * reports < 2000
    assert [e.step for e in loss] == sorted({e.step for e in loss})


def test_reports_are_written_off_the_training_thread_and_all_of_them_before_fit_returns(tmp_path, monkeypatch):
    import threading

    written, handed = [], []
    write, hand = TensorBoardReporter._write_report, TensorBoardReporter.on_report

    def recorded_write(self, writer, report):
        written.append((threading.current_thread().name, report.step))
        write(self, writer, report)

    def recorded_hand(self, trainer, pl_module, report):
        handed.append(report.step)
        hand(self, trainer, pl_module, report)

    monkeypatch.setattr(TensorBoardReporter, "_write_report", recorded_write)
    monkeypatch.setattr(TensorBoardReporter, "on_report", recorded_hand)
    bundle = Curvecast(forecast_every=20, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 120, log_every_n_steps=1)
    trainer.fit(CurveModule(120))
    assert len(handed) >= 5
    assert [step for _, step in written] == handed  # every report, in order, written by the time fit returned
    assert {name for name, _ in written} == {"curvecast-tensorboard"}
    final = read_events(Path(trainer.logger.log_dir)).Scalars("curvecast/forecast/final")
    assert final[-1].step == bundle.last_report.step


class FailsAt(CurveModule):
    def training_step(self, batch, batch_idx):
        if self.global_step == 70:
            raise RuntimeError("the run fails here")
        return super().training_step(batch, batch_idx)


def test_a_failing_run_still_has_every_report_written_before_its_logger_closes(tmp_path, monkeypatch):
    import threading

    release = threading.Event()
    write = TensorBoardReporter._write_report

    def slow_write(self, writer, report):  # held back until the run has failed: the end must wait for it
        release.wait(timeout=30)
        write(self, writer, report)

    monkeypatch.setattr(TensorBoardReporter, "_write_report", slow_write)
    bundle = Curvecast(forecast_every=20, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 120, log_every_n_steps=1)

    class Release(pl.Callback):  # runs before the bundle's on_exception: the writes may go on from here
        def on_exception(self, trainer, pl_module, exception):
            release.set()

    trainer.callbacks.insert(0, Release())
    with pytest.raises(RuntimeError, match="fails here"):
        trainer.fit(FailsAt(120))
    final = read_events(Path(trainer.logger.log_dir)).Scalars("curvecast/forecast/final")
    assert [e.step for e in final][-1] == bundle.last_report.step
