"""Shared fixtures: where the real curves are, and Trainer settings for tiny, quiet runs."""

from __future__ import annotations

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
    """Trainer arguments for a tiny CPU run with nothing but what a test asks for (see ``run_helpers.quiet_kwargs``)."""
    from run_helpers import quiet_kwargs  # here, not above: a test that needs no Trainer imports no torch

    return quiet_kwargs(tmp_path)
