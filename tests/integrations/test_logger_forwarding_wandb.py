"""LoggerForwarder to a real Weights & Biases run (offline): the forecast scalars, the alert table and the alerts,
read back from the run's own files."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")
pytest.importorskip("wandb.proto.wandb_internal_pb2")

from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger  # noqa: E402
from test_logger_forwarding import ALERTS, FORECAST_TAGS, NAN, SPIKE, STEPS, bundle  # noqa: E402

from curvecast.integrations.loggers import LoggerForwarder  # noqa: E402
from run_helpers import read_events, tiny_trainer  # noqa: E402
from tiny_models import CurveModule  # noqa: E402


def wandb_records(path: Path) -> Iterator[object]:
    """Every record of a run's ``.wandb`` file: W&B's append-only log (LevelDB's log format: 32 KiB blocks of
    checksummed chunks, a record split over blocks as first, middle and last chunks) behind a 7-byte header."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending = path.read_bytes(), 32768, 7, b""
    assert data[:7] == struct.pack("<4sHB", b":W&B", 0xBEE1, 0), "not a W&B run file of the known version"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory) -> dict:
    """One run logging to TensorBoard and to an offline W&B run, with the forwarder; what both hold afterwards."""
    tmp_path = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
                            "WANDB_DISABLE_CODE": "true", "WANDB_CONSOLE": "off", "WANDB_DIR": str(tmp_path),
                            "WANDB_CACHE_DIR": str(tmp_path / "cache"), "WANDB_CONFIG_DIR": str(tmp_path / "config"),
                            "WANDB_DATA_DIR": str(tmp_path / "data")}.items():  # fmt: skip
            env.setenv(name, value)
        tensorboard = TensorBoardLogger(str(tmp_path), name="tb")
        logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="curvecast-tests")
        forwarder = LoggerForwarder(["wandb"])
        trainer = tiny_trainer(tmp_path, [bundle(), forwarder], STEPS, logger=[tensorboard, logger])
        try:
            trainer.fit(CurveModule(STEPS, spike_at=SPIKE, nan_from=NAN))
            run_dir = Path(logger.experiment.dir).parent
        finally:
            wandb.finish()
            wandb.teardown()  # the W&B service process ends with the test module, not with the session
    records = list(wandb_records(next(run_dir.glob("run-*.wandb"))))
    return {"events": read_events(tensorboard.log_dir), "records": records, "run_dir": run_dir, "trainer": trainer}


def history(records) -> list[dict]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            )
    return rows


def test_forecast_scalars_reach_wandb_at_tensorboards_steps_and_values(wandb_run):
    assert wandb_run["trainer"].global_step == NAN + 1
    rows = history(wandb_run["records"])
    events = wandb_run["events"]
    for tag in FORECAST_TAGS:
        written = [(e.step, e.value) for e in events.Scalars(tag)]
        sent = [(row["trainer/global_step"], row[tag]) for row in rows if tag in row]
        assert [s for s, _ in sent] == [s for s, _ in written], tag
        assert [v for _, v in sent] == pytest.approx([v for _, v in written], rel=1e-6), tag
    assert len(events.Scalars("curvecast/forecast/final")) >= 5
    assert [row["trainer/global_step"] for row in rows if "curvecast/early_stopping/stopped" in row] == [NAN]


def test_warnings_and_critical_alerts_become_wandb_alerts(wandb_run):
    alerts = [r.alert for r in wandb_run["records"] if r.WhichOneof("record_type") == "alert"]
    assert [(a.title, a.level) for a in alerts] == [
        ("curvecast: spike", "WARN"), ("curvecast: early_stop", "WARN"), ("curvecast: nonfinite", "ERROR"),
    ]  # fmt: skip
    assert f"step {SPIKE} · warning · spike: loss spiked" in alerts[0].text


def test_every_alert_is_a_row_of_the_alert_table(wandb_run):
    tables = [json.loads(p.read_text()) for p in (wandb_run["run_dir"] / "files").rglob("alerts_*.table.json")]
    assert len(tables) == 2  # one per report that brought alerts: the spike's, then the stop's
    latest = max(tables, key=lambda t: len(t["data"]))
    assert latest["columns"] == ["step", "severity", "kind", "message", "source"]
    assert [(kind, step, severity) for step, severity, kind, _, _ in latest["data"]] == ALERTS
