"""Reading a real training curve of ../shared/data/curves for the forecasting tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def load_train_curve(path: Path) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Steps and training losses of a curve, its last step as the horizon, and its LR of every step (None unlogged)."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    step = np.array([float(r["step"]) for r in rows])
    loss = np.array([float(r["train_loss"]) if r["train_loss"] else np.nan for r in rows])
    lr = np.array([float(r["lr"]) if r["lr"] else np.nan for r in rows])
    ok = np.isfinite(loss)
    horizon = int(step[ok][-1])
    has = np.isfinite(lr)
    lrs = np.interp(np.arange(horizon + 1), step[has], lr[has]) if has.sum() >= 2 else None
    return step[ok], loss[ok], horizon, lrs
