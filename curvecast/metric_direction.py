"""Which way a metric should go, and its range, from its name: ``Curvecast(monitor="val_acc")`` and ``curvecast
analyze --tag val_acc`` need no ``mode="max"``, ``bounds=(0, 1)``.

A name whose words include a score (``acc``, ``f1``, ``auc``, ``iou``, ``reward``, ...) is better high; anything else
(a loss, an error rate, a perplexity) is better low. A fraction-like score (accuracy, F1, AUC, precision, recall, IoU,
Dice, mAP) is bounded by [0, 1] when every value lies there, and by [0, 100] when some value lies above 1 and none
above 100 (a percentage). What the user says (``mode``, ``bounds``) always wins.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["metric_direction"]

_WORD = r"(?:^|[/_\-. ])({})(?:\d*|@\d+)?(?=$|[/_\-. ])"
_FRACTIONS = "acc|accuracy|top\\d*|f1|auc|auroc|roc_auc|precision|recall|iou|miou|dice|map|ap"
_FRACTION = re.compile(_WORD.format(_FRACTIONS), re.IGNORECASE)
_SCORE = re.compile(_WORD.format(_FRACTIONS + "|bleu|rouge\\w*|reward|rewards|return|returns|score"), re.IGNORECASE)
_LOWER_IS_BETTER = re.compile(_WORD.format("loss|error|err|nll|ppl|perplexity|wer|cer|mse|mae|rmse"), re.IGNORECASE)

Bounds = tuple[float | None, float | None]


def metric_direction(
    name: str, values: np.ndarray | None = None, mode: str | None = None, bounds: Bounds | None = None
) -> tuple[str, Bounds | None]:
    """``(mode, bounds)`` for the series ``name`` with ``values``: the ones given, else read from the name (the
    bounds only from values seen: None without them)."""
    if mode is None:
        mode = "max" if _SCORE.search(name) and not _LOWER_IS_BETTER.search(name) else "min"
    if bounds is None and values is not None and mode == "max" and _FRACTION.search(name):
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0.0:
            top = float(finite.max())
            bounds = (0.0, 1.0) if top <= 1.0 else (0.0, 100.0) if top <= 100.0 else None
    return mode, bounds
