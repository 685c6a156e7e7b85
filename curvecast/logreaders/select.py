"""Picking the series to analyse in a log: the loss (or the one asked for) and, when present, the learning rate.

The loss is the series its owner would read. Curvecast's own record of the training loss (``curvecast/loss``, every
optimizer step) comes first when the run has one. Otherwise names differ between writers (``train_loss``,
``train/loss``, ``train_loss_step``, ``Loss/train``, ``loss``), so the loss is chosen by a ranking rather than a fixed
list, among the series whose name mentions ``loss``: one with enough points to forecast (``MIN_USEFUL_POINTS``) before
one without (a ``train_loss_step`` logged once beside a ``train_loss_epoch`` logged every epoch), then one logged at
least a ``DENSE_FRACTION`` as often as the densest (a ``train_loss`` of 8 points beside a ``val_loss`` of 100 is too
sparse), then training before validation, the most points, per-step before per-epoch, the shortest name.
"""

from __future__ import annotations

import re

import numpy as np

from curvecast.logreaders.base import Curve, LogReadError, RunLog, printable
from curvecast.series import GRAD_NORM, LR, METRIC_PREFIX, THROUGHPUT_PREFIX

__all__ = [
    "DENSE_FRACTION",
    "MAX_LR_STEPS",
    "MIN_USEFUL_POINTS",
    "choose_loss",
    "choose_lr",
    "is_held_out",
    "lr_at_every_step",
]

_LR = re.compile(r"(^|[/_\-. ])(lr|learning[_\- ]?rate)($|[/_\-. ])", re.IGNORECASE)
_EVAL = re.compile(r"(^|[/_\-. ])(val|valid|validation|eval|evaluation|test|dev)($|[/_\-. ])", re.IGNORECASE)
_SKIP_PREFIX = METRIC_PREFIX  # curvecast's own forecasts and alerts, written next to the run's metrics
_CURVECAST_LR = METRIC_PREFIX + LR  # but the LR of every step it writes is the run's own
# What curvecast writes under its prefix besides the monitor it forecasts (its record of the monitor is the rest).
_NOT_MONITOR = {LR, GRAD_NORM, "alerts"}
_NOT_MONITOR_PREFIXES = ("gns/", THROUGHPUT_PREFIX, "forecast/", "early_stopping/", "summary/", "plugin/")
_NAME_CHARS = 120  # of a series name listed in an error, enough to copy a TensorBoard tag into --tag
# A per-step LR array costs 8 bytes a step; past this many steps (say, a log indexed by tokens) it is not built.
MAX_LR_STEPS = 50_000_000
_COUNTERS = {"epoch", "step", "global_step", "hp_metric", "_runtime", "_timestamp", "wall time", "time"}
MIN_USEFUL_POINTS = 5  # the forecaster's fewest points: a series logged fewer times cannot be forecast
DENSE_FRACTION = 0.25  # of the densest useful loss's points: a loss logged less often is passed over for it


def is_held_out(name: str) -> bool:
    """Whether ``name`` names a series of held-out data, a word of it (``val_loss``, ``valid/loss``, ``test-loss``,
    ``dev.loss``; not ``interval_loss``)."""
    return _EVAL.search(name) is not None


def _leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _run_depth(curve: Curve) -> int:
    return curve.run.count("/") + 1 if curve.run else 0


def _tag(curve: Curve) -> str:
    """The series' name within its run, lower case (``version_0/curvecast/loss`` -> ``curvecast/loss``)."""
    return curve.name[len(curve.run) + 1 :].lower() if curve.run else curve.name.lower()


def _is_candidate(curve: Curve) -> bool:
    tag = _tag(curve)
    return not tag.startswith(_SKIP_PREFIX) and _leaf(tag) not in _COUNTERS and not _LR.search(tag)


def _is_own_monitor(curve: Curve) -> bool:
    """Whether the series is curvecast's record of the training loss it forecast (``curvecast/loss``): written at
    every optimizer step, it is denser than what the module logged of the same value. A validation monitor's record
    (``curvecast/val_loss``) is no training loss, and one of another metric (``curvecast/val_acc``) no loss."""
    tag = _tag(curve)
    rest = tag[len(_SKIP_PREFIX) :]
    return (
        tag.startswith(_SKIP_PREFIX)
        and rest not in _NOT_MONITOR
        and not rest.startswith(_NOT_MONITOR_PREFIXES)
        and "loss" in rest
        and not is_held_out(rest)
    )


def _may_be_lr(name: str) -> bool:
    """Not one of curvecast's own tags, but for the LR it writes (``curvecast/lr``, the LR of every step)."""
    return not name.lower().startswith(_SKIP_PREFIX) or name.lower().endswith(_CURVECAST_LR)


def _describe(log: RunLog, limit: int = 40) -> str:
    names = log.names
    shown = ", ".join(printable(name, _NAME_CHARS) for name in names[:limit])  # from files: escaped, one line
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def choose_loss(log: RunLog, tag: str | None = None) -> Curve:
    """The series named ``tag``, or the run's training loss (see the module's docstring for how it is chosen).

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
    own = [name for name, curve in log.curves.items() if _is_own_monitor(curve) and len(curve)]
    candidates = [name for name, curve in log.curves.items() if _is_candidate(curve)]
    losses = own + [name for name in candidates if "loss" in name.lower()]
    if not losses:
        if len(candidates) == 1:  # a plain two-column table: step and one value
            return log.curves[candidates[0]]
        raise LogReadError(
            f"Expected a series whose name contains 'loss' in {log.source}, but found none; "
            f"pick one with --tag. The series are: {_describe(log)}"
        )
    # Points logged, NaN and inf included: a loss that went NaN is what its owner most needs to see.
    densest = max((len(log.curves[name]) for name in losses), default=0)

    def rank(name: str) -> tuple[int, ...]:
        curve = log.curves[name]
        return (
            _run_depth(curve),
            int(name not in own),
            int(len(curve) < MIN_USEFUL_POINTS),
            int(len(curve) < DENSE_FRACTION * densest),
            int(is_held_out(_tag(curve))),
            -len(curve),
            int(_tag(curve).endswith("epoch")),
            len(name),
        )

    ranked = sorted(losses, key=rank)
    best = ranked[0]
    ties = [
        name for name in ranked[1:] if rank(name)[:5] == rank(best)[:5] and log.curves[name].run != log.curves[best].run
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
