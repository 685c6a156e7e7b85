"""How the tests run a tiny Trainer (``tiny_trainer``) and read back what it wrote to TensorBoard (``read_events``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from tensorboard.backend.event_processing.event_accumulator import STORE_EVERYTHING_SIZE_GUIDANCE, EventAccumulator
from tensorboard.util import tensor_util

ALERTS_TAG = "curvecast/alerts/text_summary"
_TENSORBOARD = object()  # tiny_trainer's default logger: a TensorBoardLogger of the Trainer's flavour


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
