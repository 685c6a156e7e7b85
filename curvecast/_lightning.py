"""The one place that knows which Lightning package is installed, and the small Trainer facts curvecast relies on.

Both flavours are supported with a single set of classes. curvecast's callbacks subclass ``pytorch_lightning.Callback``
(the ``pytorch-lightning`` distribution is a dependency, and ``pip install lightning`` installs it too), and only
duck-type the Trainer, its strategy and its loggers. A ``lightning.pytorch.Trainer`` runs any object with the
callback hooks as long as it is passed inside a list, ``Trainer(callbacks=[Curvecast()])``, which is how the Lightning
docs write it anyway; passed bare, it would not be recognised as a callback by the other flavour.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback

__all__ = ["Callback", "is_global_zero", "optimizer_step_index", "tensorboard_writer"]

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
