"""The one place that knows which Lightning package is installed, and the small Trainer facts curvecast relies on.

Both flavours are supported with a single set of classes. curvecast's callbacks subclass ``pytorch_lightning.Callback``
(the ``pytorch-lightning`` distribution is a dependency, and ``pip install lightning`` installs it too), and only
duck-type the Trainer, its strategy and its loggers. A ``lightning.pytorch.Trainer`` runs any object with the
callback hooks as long as it is passed inside a list, ``Trainer(callbacks=[Curvecast()])``, which is how the Lightning
docs write it anyway; passed bare, it would not be recognised as a callback by the other flavour.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any

from pytorch_lightning import Callback

__all__ = [
    "Callback",
    "guarded",
    "is_global_zero",
    "optimizer_step_index",
    "tensorboard_writer",
    "warn_once",
]

log = logging.getLogger("curvecast")
_warned: set[str] = set()


class CurvecastWarning(UserWarning):
    """A problem inside curvecast that it survived; the training run goes on."""


def warn_once(message: str, key: str | None = None) -> None:
    """Warn (and log) once per process for ``key``, so a recurring problem does not flood the output."""
    key = key or message
    if key in _warned:
        return
    _warned.add(key)
    log.warning(message)
    warnings.warn(message, CurvecastWarning, stacklevel=3)


def guarded(method):
    """Turn an exception inside a hook into a single warning: curvecast must never kill the run it watches."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any failure of ours must not reach the training loop
            name = f"{type(self).__name__}.{method.__name__}"
            warn_once(f"curvecast: {name} failed and was skipped ({type(error).__name__}: {error})", key=name)
            return None

    return wrapper


def is_global_zero(trainer: Any) -> bool:
    return bool(getattr(trainer, "is_global_zero", True))


def optimizer_step_index(trainer: Any, *, after_step: bool = False) -> int:
    """The step a value measured in the current batch belongs to, on the same axis as ``self.log`` writes.

    Lightning's loggers put a value logged in a batch at the number of batches that stepped before it. From public
    Trainer state: ``trainer.global_step`` counts optimizer steps, every optimizer's under manual optimization, so the
    steps taken per optimizer before this batch are ``global_step // len(trainer.optimizers)`` (exact when each
    optimizer steps once per stepping batch, as in automatic optimization and the usual GAN loop).

    Args:
        after_step: the batch's optimizer step has been taken already (``on_train_batch_end`` of a stepping batch),
            so ``global_step`` counts it.
    """
    optimizers = max(len(getattr(trainer, "optimizers", None) or ()), 1)
    index = int(trainer.global_step) // optimizers
    return max(index - 1, 0) if after_step else index


def tensorboard_writer(trainer: Any):
    """The ``SummaryWriter`` of the Trainer's first TensorBoard logger, or None (duck-typed across flavours)."""
    from torch.utils.tensorboard import SummaryWriter

    for logger in getattr(trainer, "loggers", None) or []:
        if type(logger).__name__ != "TensorBoardLogger":
            continue
        experiment = logger.experiment
        if isinstance(experiment, SummaryWriter):
            return experiment
    return None
