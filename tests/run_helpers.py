"""How the tests run a tiny Trainer (``tiny_trainer``), keep the anomalies it reported (``AnomalyRecorder``) and read
back what it wrote to TensorBoard (``read_events``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from tensorboard.backend.event_processing.event_accumulator import STORE_EVERYTHING_SIZE_GUIDANCE, EventAccumulator
from tensorboard.util import tensor_util

from curvecast.integrations.actuator import Actuator

ALERTS_TAG = "curvecast/alerts/text_summary"
_TENSORBOARD = object()  # tiny_trainer's default logger: a TensorBoardLogger of the Trainer's flavour


class AnomalyRecorder(Actuator):
    """Keeps every anomaly of every report."""

    def __init__(self) -> None:
        self.anomalies: list[Any] = []

    def on_report(self, trainer: Any, pl_module: Any, report: Any) -> None:
        self.anomalies += report.anomalies


def quiet_kwargs(tmp_path: Path, **overrides: Any) -> dict:
    """Trainer arguments for a tiny CPU run with nothing but what a test asks for: no logger, checkpoint, progress
    bar, model summary or sanity check (``overrides`` replace any of them)."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    kwargs = {
        "default_root_dir": tmp_path,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    kwargs.update(overrides)
    return kwargs


def tiny_trainer(
    tmp_path: Path,
    callbacks: Iterable[Any],
    max_steps: int,
    *,
    logger: Any = _TENSORBOARD,
    flavour: Any = pl,
    **overrides: Any,
) -> Any:
    """A real ``flavour.Trainer`` (``pytorch_lightning`` or ``lightning.pytorch``) of ``max_steps`` steps on the CPU,
    quiet as ``quiet_kwargs`` says, logging to a TensorBoardLogger under ``tmp_path / "tb"`` unless ``logger`` is
    given (``False``: none). ``overrides`` are further Trainer arguments."""
    if logger is _TENSORBOARD:
        logger = flavour.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    kwargs = quiet_kwargs(tmp_path, logger=logger, max_steps=max_steps, **overrides)
    return flavour.Trainer(callbacks=list(callbacks), **kwargs)


def read_events(path: Path | str) -> EventAccumulator:
    """Every event of a TensorBoard run directory or of one event file, loaded (none sampled away)."""
    return EventAccumulator(str(path), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE).Reload()


def texts(events: EventAccumulator, tag: str = ALERTS_TAG) -> list[str]:
    """The markdown of every text summary of ``tag`` (by default curvecast's alerts), in the order written."""
    return [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in events.Tensors(tag)]


# TensorBoard's two loaders: the Python one (read whole before the server answers) and the Rust data server that
# `tensorboard --logdir` uses by default where its binary is installed (it loads in the background).
TENSORBOARD_LOADERS = {
    "python": ["--load_fast", "false", "--reload_task", "blocking", "--reload_interval", "0"],
    "rust": ["--load_fast", "true"],
}


def rust_data_server() -> str | None:
    """The binary of ``tensorboard-data-server`` for this platform, or None (TensorBoard uses its Python loader)."""
    try:
        import tensorboard_data_server
    except ImportError:
        return None
    return tensorboard_data_server.server_binary()


class TensorBoardServer:
    """A ``tensorboard`` process over ``logdir`` with one of :data:`TENSORBOARD_LOADERS` (and further ``args``), on a
    free port, for a ``with`` block: ``url`` is its address and ``log`` the lines it has printed (its stderr, read as
    it runs so that a full pipe never blocks it). The process ends with the block; no address printed fails the test.
    """

    def __init__(self, logdir: Path, loader: str, *args: str) -> None:
        import sys

        self.command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                        "--port", "0", *TENSORBOARD_LOADERS[loader], *args]  # fmt: skip
        self.url = ""
        self.log: list[str] = []

    def __enter__(self) -> TensorBoardServer:
        import re
        import subprocess
        import threading

        import pytest

        self._process = subprocess.Popen(self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for line in iter(self._process.stderr.readline, ""):
            self.log.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            self._process.kill()
            self._process.wait(timeout=30)
            pytest.fail("tensorboard printed no address:\n" + "".join(self.log[-20:]))
        threading.Thread(target=lambda: self.log.extend(self._process.stderr), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)
