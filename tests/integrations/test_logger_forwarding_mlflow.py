"""LoggerForwarder to a real MLflow run (a local file store): the forecast scalars, the alert tags and the alert
text artifact, read back with MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from pytorch_lightning.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger  # noqa: E402
from test_logger_forwarding import (  # noqa: E402
    ALERTS,
    FORECAST_TAGS,
    NAN,
    SPIKE,
    STEPS,
    bundle,
)

from curvecast.integrations.loggers import LoggerForwarder  # noqa: E402
from run_helpers import read_events, tiny_trainer  # noqa: E402
from tiny_models import CurveModule  # noqa: E402


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A local file store (MLflow 3 asks for the opt-in: it would rather have a database)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{tmp_path / 'mlruns'}"


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text()


def test_forecasts_and_alerts_reach_mlflow(tmp_path, mlflow_store):
    tensorboard = TensorBoardLogger(str(tmp_path), name="tb")
    logger = MLFlowLogger(experiment_name="curvecast-tests", tracking_uri=mlflow_store)
    csv_logger = CSVLogger(str(tmp_path), name="csv")  # not chosen: gets no forecast
    trainer = tiny_trainer(tmp_path, [bundle(), LoggerForwarder([MLFlowLogger])], STEPS,
                           logger=[tensorboard, logger, csv_logger])  # fmt: skip
    trainer.fit(CurveModule(STEPS, spike_at=SPIKE, nan_from=NAN))
    assert trainer.global_step == NAN + 1

    client = MlflowClient(tracking_uri=mlflow_store)
    events = read_events(tensorboard.log_dir)
    for tag in FORECAST_TAGS:
        written = [(e.step, e.value) for e in events.Scalars(tag)]
        sent = sorted((m.step, m.value) for m in client.get_metric_history(logger.run_id, tag))
        assert [s for s, _ in sent] == [s for s, _ in written], tag
        assert [v for _, v in sent] == pytest.approx([v for _, v in written], rel=1e-6), tag
    assert len(events.Scalars("curvecast/forecast/final")) >= 5
    assert [m.step for m in client.get_metric_history(logger.run_id, "curvecast/early_stopping/stopped")] == [NAN]

    tags = client.get_run(logger.run_id).data.tags
    assert tags["curvecast/alerts"] == str(len(ALERTS))
    assert tags["curvecast/last_alert"].startswith(f"step {NAN} · critical · nonfinite: The training loss became nan")
    assert tags["curvecast/early_stop"].startswith(f"Stopped at step {NAN}: The training loss became nan")
    lines = artifact_text(client, logger.run_id, "curvecast/alerts.txt", tmp_path).splitlines()
    assert [tuple(line.split(":")[0].split(" · ")) for line in lines] == [
        (f"step {step}", severity, kind) for kind, step, severity in ALERTS
    ]
    csv_metrics = Path(csv_logger.log_dir) / "metrics.csv"  # written only if some metric reached the CSVLogger
    assert not csv_metrics.exists() or "curvecast/" not in csv_metrics.read_text()
