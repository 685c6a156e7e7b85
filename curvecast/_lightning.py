"""The one place that knows which Lightning package is installed, and the small Trainer facts curvecast relies on.

Both flavours are supported with a single set of classes. curvecast's callbacks subclass :class:`Callback`, which is
``pytorch_lightning.Callback`` (the ``pytorch-lightning`` distribution is a dependency) and, when the ``lightning``
distribution is installed too, ``lightning.pytorch.Callback`` as well: each flavour's Trainer, passed a callback bare
or in a list, and each flavour's ``LightningCLI`` (``--trainer.callbacks+=curvecast.Curvecast``) then take them as
their own. The two base classes define the same hooks, each doing nothing, so inheriting both changes no behaviour.
The Trainer, its strategy and its loggers are only duck-typed.
"""

from __future__ import annotations

import sys
from typing import Any

from pytorch_lightning import Callback as _ClassicCallback

try:
    from lightning.pytorch import Callback as _UnifiedCallback
except ImportError:  # the `lightning` distribution is optional; importing it beside pytorch_lightning costs ~0.1 s
    _UnifiedCallback = None

__all__ = [
    "CPU_HOST_STEPS", "Callback", "StepReader", "dev_run", "fitting", "host_cadence", "is_global_zero",
    "logging_cadence", "logging_suppressed", "optimizer_step_index", "run_ends_at", "steps_taken", "stopped_by",
    "tensorboard_writer", "timer_of", "trains_on_cpu",
]  # fmt: skip

# On one CPU, per-step values reach the host every this many steps. A move is free there (no device to wait for),
# but the Python around it (stacking, recording, scoring each point) costs about 0.1 ms: batching it keeps the
# per-step cost to appending a tensor to a list. A divergence is then stopped at most this many steps late.
CPU_HOST_STEPS = 8

if _UnifiedCallback is None:
    Callback = _ClassicCallback
else:

    class Callback(_ClassicCallback, _UnifiedCallback):  # type: ignore[misc,no-redef]
        """A callback of both Lightning flavours (``pytorch_lightning`` and ``lightning.pytorch``)."""


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
    return _step_index(trainer, *_global_step(trainer), after_step)


class StepReader:
    """:func:`optimizer_step_index` and :func:`steps_taken` of one fit, the training loop's two step counters looked
    up once (at the start of training: a sensor reads them every step, two attributes where the walk from the Trainer
    reads thirteen, about 1 us run cold after the backward pass). Lightning updates those counter objects in place
    for the whole fit (a checkpoint's counts are loaded into them), so a reader made at the start of a fit follows it.
    """

    __slots__ = ("_trainer", "_automatic", "_manual")

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer
        try:
            loop = trainer.fit_loop.epoch_loop
            self._automatic = loop.automatic_optimization.optim_progress.optimizer.step.total
            self._manual = loop.manual_optimization.optim_step_progress.total
            self._automatic.completed + self._manual.completed  # noqa: B018 - both are counters, or the walk decides
        except (AttributeError, TypeError):
            self._automatic = self._manual = None

    def _counts(self) -> tuple[int, bool]:
        automatic, manual = self._automatic, self._manual
        if automatic is None:
            return _global_step(self._trainer)
        done, manual_done = automatic.completed, manual.completed
        if done and manual_done:  # as in `_global_step`: the property decides
            return int(self._trainer.global_step), True
        return int(done + manual_done), bool(manual_done)

    def index(self, *, after_step: bool = False) -> int:
        """``optimizer_step_index(trainer, after_step=after_step)``."""
        automatic = self._automatic
        if automatic is not None and not self._manual.completed:  # automatic optimization: read inline (every step)
            done = automatic.completed
            return (done - 1 if done > 0 else 0) if after_step else done
        return _step_index(self._trainer, *self._counts(), after_step)

    def taken_and_index(self) -> tuple[int, int]:
        """``steps_taken(trainer)`` and ``optimizer_step_index(trainer, after_step=True)``, from one read."""
        automatic = self._automatic
        if automatic is not None and not self._manual.completed:  # automatic optimization: read inline (every step)
            taken = automatic.completed
            return taken, (taken - 1 if taken > 0 else 0)
        taken, per_optimizer = self._counts()
        return taken, _step_index(self._trainer, taken, per_optimizer, True)


def _step_index(trainer: Any, index: int, per_optimizer: bool, after_step: bool) -> int:
    if per_optimizer:  # manual optimization: ``global_step`` counts the steps of every optimizer
        optimizers = getattr(trainer, "optimizers", None)
        index //= len(optimizers) if optimizers else 1
    return (index - 1 if index > 0 else 0) if after_step else index


def steps_taken(trainer: Any) -> int:
    """``trainer.global_step``, read cheaply (see :func:`_global_step`)."""
    return _global_step(trainer)[0]


def _global_step(trainer: Any) -> tuple[int, bool]:
    """``trainer.global_step``, and whether it may count several optimizers' steps (manual optimization).

    Read from the training loop's two step counters: the property walks five others to pick the one of the module's
    optimization mode (3 us, and the sensors read it six times a step), while only that one ever moves. Automatic
    optimization steps one optimizer. Both moved (a module whose mode changed between fits), or another loop: the
    property decides, and the optimizers are counted.
    """
    try:
        loop = trainer.fit_loop.epoch_loop
        automatic = loop.automatic_optimization.optim_progress.optimizer.step.total.completed
        manual = loop.manual_optimization.optim_step_progress.total.completed
    except AttributeError:
        return int(trainer.global_step), True
    if automatic and manual:
        return int(trainer.global_step), True
    return int(automatic + manual), bool(manual)


def host_cadence(trainer: Any) -> int:
    """Steps between moves of per-step values (losses, gradient norms) from the device to the host.

    The Trainer's ``log_every_n_steps`` on an accelerator or under DDP, where a move waits for the device or is a
    collective; on one CPU at most ``CPU_HOST_STEPS``, so that anomalies are scored soon after their step.
    """
    every = logging_cadence(trainer)
    single = int(getattr(trainer, "world_size", 1) or 1) == 1
    return min(every, CPU_HOST_STEPS) if trains_on_cpu(trainer) and single else every


def logging_cadence(trainer: Any) -> int:
    """The Trainer's ``log_every_n_steps``, at least 1."""
    return max(int(getattr(trainer, "log_every_n_steps", 50) or 1), 1)


def run_ends_at(trainer: Any, step: int, max_steps: int, single: bool) -> bool:
    """Whether the run ends after ``step`` (an optimizer step index): ``max_steps`` reached, or a stop asked on one
    process (under DDP ``should_stop`` may differ between ranks for a moment, and a move it brought would be a
    collective). The sensors move what they hold to the host there, the losses and the gradient norms together: the
    detectors pair the two in the batch they come in."""
    return 0 < max_steps <= step + 1 or (single and bool(getattr(trainer, "should_stop", False)))


def several_players(trainer: Any, pl_module: Any) -> bool:
    """Whether the module steps more than one optimizer by hand: a GAN's generator and discriminator, an actor-critic
    agent's actor and critic. Each minimises its own objective, so no logged loss is the run's: one player's loss
    rises as the other learns. (Lightning 2 runs several optimizers under manual optimization only.)"""
    if getattr(pl_module, "automatic_optimization", True):
        return False
    return len(getattr(trainer, "optimizers", None) or ()) > 1


def fitting(trainer: Any) -> bool:
    """Whether the Trainer is fitting, not validating, testing or predicting on its own (True when it cannot tell):
    ``validate``/``test`` after a fit, with a ``ckpt_path`` or not, leave the run's curves and state as they were."""
    fn = getattr(getattr(trainer, "state", None), "fn", None)
    return fn is None or fn == "fit"


def dev_run(trainer: Any) -> bool:
    """Whether the Trainer runs ``fast_dev_run``: a few batches to check the code, each loop cut short and the loggers
    swapped for stand-ins. What the run's length or its loggers would call for is then not the user's real run's."""
    return bool(getattr(trainer, "fast_dev_run", False))


def logging_suppressed(trainer: Any) -> bool:
    """Whether Lightning has swapped every logger of the Trainer for its ``DummyLogger`` (``fast_dev_run`` does, as
    the tuner's trial fits do): the user's loggers are there, only silenced for this run."""
    loggers = getattr(trainer, "loggers", None) or []
    return bool(loggers) and all(type(logger).__name__ == "DummyLogger" for logger in loggers)


def trains_on_cpu(trainer: Any) -> bool:
    """Whether the Trainer's root device is a CPU (also when it cannot be told)."""
    device = getattr(getattr(trainer, "strategy", None), "root_device", None)
    return device is None or getattr(device, "type", "cpu") == "cpu"


def tensorboard_writer(trainer: Any):
    """The ``SummaryWriter`` of the Trainer's first TensorBoard logger, or None: an instance of either flavour's
    ``TensorBoardLogger`` (a subclass included), or a logger of a class by that name."""
    from torch.utils.tensorboard import SummaryWriter

    types = _tensorboard_logger_types()
    for logger in getattr(trainer, "loggers", None) or []:
        if not isinstance(logger, types) and type(logger).__name__ != "TensorBoardLogger":
            continue
        experiment = logger.experiment
        if isinstance(experiment, SummaryWriter):
            return experiment
    return None


def _tensorboard_logger_types() -> tuple[type, ...]:
    """The ``TensorBoardLogger`` classes of the flavours imported so far."""
    return _imported("loggers.tensorboard", "TensorBoardLogger")


def _imported(module: str, name: str) -> tuple[type, ...]:
    """The class ``name`` of ``module`` in each flavour imported so far (an object of a flavour never imported cannot
    exist, and importing one costs time)."""
    found = []
    for flavour in ("pytorch_lightning", "lightning.pytorch"):
        cls = getattr(sys.modules.get(f"{flavour}.{module}"), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def stopped_by(trainer: Any) -> str:
    """What set ``trainer.should_stop``, in words, for a run that ended before its planned end: an ``EarlyStopping``
    that stopped (its reason, where its Lightning keeps one), a ``Timer`` whose time ran out, or else "a callback or
    the module" (anything may set the flag; only these two say they did)."""
    callbacks = getattr(trainer, "callbacks", None) or []
    for callback in callbacks:
        if isinstance(callback, _imported("callbacks.early_stopping", "EarlyStopping")) and _has_stopped(callback):
            said = getattr(callback, "stopping_reason_message", None)  # Lightning 2.6 keeps the reason it logged
            reason = said.replace(" Signaling Trainer to stop.", "").strip(" .") if isinstance(said, str) else ""
            if not reason:
                reason = f"{callback.monitor} did not improve in the last {callback.wait_count} checks"
            return f"{type(callback).__name__} at epoch {callback.stopped_epoch} ({reason})"
    timer = timer_of(trainer)
    if timer is not None and timer.time_remaining() <= 0:
        return f"{type(timer).__name__} (its time limit was reached)"
    return "a callback or the module (`trainer.should_stop` was set)"


def timer_of(trainer: Any) -> Any:
    """The Trainer's ``Timer`` callback with a duration (``max_time``, or one the user added), or None."""
    for callback in getattr(trainer, "callbacks", None) or []:
        if isinstance(callback, _imported("callbacks.timer", "Timer")) and callback.time_remaining() is not None:
            return callback
    return None


def _has_stopped(callback: Any) -> bool:
    reason = getattr(callback, "stopping_reason", None)  # an enum from Lightning 2.6; before it, the counters
    if reason is not None:
        return getattr(reason, "name", "") != "NOT_STOPPED"
    return callback.stopped_epoch > 0 or callback.wait_count >= callback.patience
