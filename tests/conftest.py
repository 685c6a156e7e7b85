"""Shared fixtures: where the real curves are, and Trainer settings for tiny, quiet runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from curvecast.failsafe import forget_warnings

CURVES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "curves"


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    """Each test starts with no curvecast warning given yet (each is given once per process otherwise)."""
    forget_warnings()


@pytest.fixture(scope="session")
def curves_dir() -> Path:
    if not CURVES_DIR.is_dir():
        pytest.skip(f"the real training curves are not at {CURVES_DIR}")
    return CURVES_DIR


@pytest.fixture
def quiet_trainer_kwargs(tmp_path: Path) -> dict:
    """Trainer arguments for a tiny CPU run with nothing but what a test asks for."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    return {
        "default_root_dir": tmp_path,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
