"""Picking the series to analyse in a log: the loss (or the one asked for) and, when present, the learning rate.

Names differ between writers (``train_loss``, ``train/loss``, ``train_loss_step``, ``Loss/train``, ``loss``), so the
loss is chosen by a ranking rather than a fixed list: a name mentioning ``loss``, training before validation, per-step
before per-epoch, then the series with the most points.
"""

from __future__ import annotations

import re

import numpy as np

from curvecast.logreaders.base import Curve, LogReadError, RunLog, printable

__all__ = ["MAX_LR_STEPS", "choose_loss", "choose_lr", "lr_at_every_step"]

_LR = re.compile(r"(^|[/_\-. ])(lr|learning[_\- ]?rate)($|[/_\-. ])", re.IGNORECASE)
_EVAL = re.compile(r"(^|[/_\-. ])(val|valid|validation|eval|evaluation|test|dev)($|[/_\-. ])", re.IGNORECASE)
_SKIP_PREFIXES = ("curvecast/",)  # curvecast's own forecasts and alerts, written next to the run's metrics
_CURVECAST_LR = "curvecast/lr"  # but the LR of every step it writes is the run's own
_NAME_CHARS = 120  # of a series name listed in an error, enough to copy a TensorBoard tag into --tag
# A per-step LR array costs 8 bytes a step; past this many steps (say, a log indexed by tokens) it is not built.
MAX_LR_STEPS = 50_000_000
_COUNTERS = {"epoch", "step", "global_step", "hp_metric", "_runtime", "_timestamp", "wall time", "time"}


def _leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _run_depth(curve: Curve) -> int:
    return curve.run.count("/") + 1 if curve.run else 0


def _is_candidate(name: str) -> bool:
    lowered = name.lower()
    return not lowered.startswith(_SKIP_PREFIXES) and _leaf(name) not in _COUNTERS and not _LR.search(name)


def _may_be_lr(name: str) -> bool:
    """Not one of curvecast's own tags, but for the LR it writes (``curvecast/lr``, the LR of every step)."""
    return not name.lower().startswith(_SKIP_PREFIXES) or name.lower().endswith(_CURVECAST_LR)


def _describe(log: RunLog, limit: int = 40) -> str:
    names = log.names
    shown = ", ".join(printable(name, _NAME_CHARS) for name in names[:limit])  # from files: escaped, one line
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def choose_loss(log: RunLog, tag: str | None = None) -> Curve:
    """The series named ``tag``, or the run's training loss.

    Raises:
        LogReadError: if ``tag`` is not in the log, or no series looks like a loss; the message lists the series.
    """
    if tag is not None:
        if tag in log.curves:
            return log.curves[tag]
        suffix = [name for name in log.curves if name.endswith("/" + tag)]
        if len(suffix) == 1:
            return log.curves[suffix[0]]
        raise LogReadError(
            f"Expected `--tag` to be one of the series in {log.source}, but got {tag!r}. "
            f"The series are: {_describe(log)}"
        )
    candidates = [name for name in log.curves if _is_candidate(name)]
    losses = [name for name in candidates if "loss" in name.lower()]
    if not losses:
        if len(candidates) == 1:  # a plain two-column table: step and one value
            return log.curves[candidates[0]]
        raise LogReadError(
            f"Expected a series whose name contains 'loss' in {log.source}, but found none; "
            f"pick one with --tag. The series are: {_describe(log)}"
        )

    def rank(name: str) -> tuple[int, int, int, int, int]:
        lowered = name.lower()
        return (
            _run_depth(log.curves[name]),
            int(bool(_EVAL.search(name))),
            int(lowered.endswith("epoch")),
            -len(log.curves[name]),
            len(name),
        )

    ranked = sorted(losses, key=rank)
    best = ranked[0]
    ties = [
        name for name in ranked[1:] if rank(name)[:3] == rank(best)[:3] and log.curves[name].run != log.curves[best].run
    ]
    if ties:
        raise LogReadError(
            f"Expected one run under {log.source}, but {', '.join(map(printable, [best, *ties]))} are equally likely "
            "the loss; pass one run's directory, or pick the series with --tag"
        )
    return log.curves[best]


def choose_lr(log: RunLog, loss: Curve) -> Curve | None:
    """The learning-rate series of the same run as ``loss`` (the most points wins), or None when none was logged."""
    lrs = [curve for name, curve in log.curves.items() if _LR.search(name) and _may_be_lr(name)]
    # The loss's own run first, then the top-level run (some writers log the LR once, beside all runs).
    for run in dict.fromkeys((loss.run, "")):
        mine = [curve for curve in lrs if curve.run == run]
        if mine:
            return max(mine, key=lambda curve: (len(curve), -len(curve.name)))
    return None


def lr_at_every_step(lr: Curve, horizon: int) -> np.ndarray | None:
    """The LR of steps 0..horizon, each step taking the last logged value (None when the log stops short of it).

    Past its last logged step the schedule of a finished log is unknown, and holding it flat would mislead a
    schedule-aware forecast, so an LR log that ends well before the horizon is not used at all.
    """
    steps, values = lr.steps, lr.values
    if len(steps) == 0 or horizon > MAX_LR_STEPS or not np.all(np.isfinite(values)) or np.any(values < 0):
        return None
    spacing = int(np.median(np.diff(steps))) if len(steps) > 1 else 1
    if steps[-1] + max(spacing, 1) < horizon:
        return None
    index = np.searchsorted(steps, np.arange(horizon + 1), side="right") - 1
    return values[np.clip(index, 0, None)]
