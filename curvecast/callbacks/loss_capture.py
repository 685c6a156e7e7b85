"""LossCapture: the training loss of every optimizer step, the logged validation metrics, and the weights of the
objective's terms the module logs, into a RunHistory."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from curvecast._lightning import StepReader, fitting, host_cadence, run_ends_at
from curvecast.callbacks.sensor import Sensor
from curvecast.failsafe import guarded
from curvecast.history import RunHistory
from curvecast.metric_direction import names_a_coefficient
from curvecast.series import METRIC_PREFIX, TRAIN_LOSS, is_validation_metric
from curvecast.state_checks import checked_mapping

__all__ = ["LossCapture", "is_validation_metric"]

# Weights of the objective's terms recorded at most: a module logging a weight per layer must not grow the history.
MAX_COEFFICIENTS = 8
_COEFFICIENT_LOOKS = 4  # flushes in a row with no weight logged before the names are read once an epoch only


def _loss_tensor(outputs: Any) -> torch.Tensor | None:
    """The loss a ``training_step`` returned: a tensor, or ``{"loss": tensor}``; None when it returned nothing."""
    if type(outputs) is dict:  # what Lightning hands under automatic optimization: tested first, in one check
        loss = outputs.get("loss")
        return loss if isinstance(loss, torch.Tensor) else None
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict):
        loss = outputs.get("loss")
        return loss if isinstance(loss, torch.Tensor) else None
    return None


def _stacked(losses: list[torch.Tensor]) -> torch.Tensor:
    """Losses of any shape with one element (0-d as a rule) as one float32 vector; one op when all are 0-d."""
    stacked = None
    if losses[0].dim() == 0:  # as a rule all are: stacked without a look at each one's shape first
        with contextlib.suppress(RuntimeError):  # shapes differ, e.g. () and (1,)
            stacked = torch.stack(losses)
    if stacked is None:
        stacked = torch.stack([loss.reshape(()) for loss in losses])
    return stacked if stacked.dtype == torch.float32 else stacked.float()  # a cast is one more op, run cold


class LossCapture(Sensor):
    """Record the training loss of every optimizer step and the validation metrics logged by the module.

    Under gradient accumulation Lightning hands ``on_train_batch_end`` each micro-batch's loss divided by
    ``accumulate_grad_batches``; this undoes the division and averages the micro-batches of one optimizer step. Under
    DDP the per-step losses are averaged over ranks. Values stay on the device and are moved to the host every
    ``flush_every`` steps, in one transfer. At each such move it also records the weights of the objective's terms
    the module logs (``beta``, ``kl_weight``: ``metric_direction.names_a_coefficient``) as they stand, the evidence
    that a climb of the loss is its objective changing (``forecasting.anomalies.objective_change``): a value per move,
    read from ``trainer.callback_metrics`` there and not at every step, each name matched once.

    Args:
        history: where to record; a new one by default (``capture.history``).
        flush_every: optimizer steps between host transfers. ``None``: every step on CPU (no sync to save), else
            ``trainer.log_every_n_steps``.
        metrics: the validation metrics to record from ``trainer.callback_metrics``: a predicate on the name, or
            names. By default every scalar metric whose name contains "val".
        train_metric: a metric the module logs in ``training_step`` (``self.log("train_acc", ...)``) to record at every
            optimizer step too, beside the loss (found as ``name`` or, when logged on step and epoch, ``name_step``).

    Example::

        >>> capture = LossCapture()
        >>> capture.history.names()
        []
    """

    def __init__(
        self,
        history: RunHistory | None = None,
        flush_every: int | None = None,
        metrics: Callable[[str], bool] | Iterable[str] | None = None,
        train_metric: str | None = None,
    ) -> None:
        if flush_every is not None and flush_every < 1:
            raise ValueError(f"Expected `flush_every` to be a positive int or None, but got {flush_every}")
        super().__init__(history)
        self.flush_every = flush_every
        if metrics is None:
            self._is_metric = is_validation_metric
        elif callable(metrics):
            self._is_metric = metrics
        else:
            names = set(metrics)
            self._is_metric = names.__contains__
        self.train_metric = train_metric
        # The last tensor recorded of each metric. Lightning hands out a new view of the same storage until the module
        # logs the metric again (a clone): a storage seen before is a value already recorded, not a new point.
        self._metric_seen: dict[str, torch.Tensor] = {}
        self._pending_metric: list[tuple[int, torch.Tensor]] = []
        self._coefficient: dict[str, bool] = {}  # each logged name, matched once: a weight of the objective's terms?
        # Flushes left that read the logged names (Lightning builds `callback_metrics` anew each time: 12-30 us). A run
        # that logs no weight in its first flushes is looked at again only at each epoch's end, where new names can
        # appear; one that logs a weight is read at every flush.
        self._coefficient_looks = _COEFFICIENT_LOOKS
        self.steps_without_loss = 0  # optimizer steps whose training_step returned no loss
        self.flushes = 0  # transfers of losses to the host so far: the same count on every rank
        self._micro: list[torch.Tensor] = []
        self._pending_steps: list[int] = []
        self._pending_losses: list[torch.Tensor] = []
        self._seen_global_step: int | None = None
        self._flush_every = 1
        self._max_steps, self._single = -1, True  # the run's length, and whether it is one process
        self._scale = 1.0
        self._trainer: Any = None
        self._steps: StepReader | None = None  # the Trainer's step counters, from the start of training

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._trainer = trainer
        self._steps = StepReader(trainer)
        self._seen_global_step = int(trainer.global_step)
        self._micro.clear()
        self._flush_every = self.flush_every or host_cadence(trainer)
        self._max_steps = int(getattr(trainer, "max_steps", -1) or -1)
        self._single = int(getattr(trainer, "world_size", 1) or 1) == 1
        # Lightning hands each micro-batch's loss divided by the accumulation: undone at the flush, in one op.
        self._scale = float(trainer.accumulate_grad_batches) if pl_module.automatic_optimization else 1.0

    @guarded
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = _loss_tensor(outputs)
        if loss is not None and loss.numel() == 1:
            # Under automatic optimization Lightning hands a detached copy of the step's loss: kept as it is (a
            # detach is a tensor op, 5-10 us run cold after the step); the scale and dtype are applied at the flush.
            self._micro.append(loss.detach() if loss.requires_grad else loss)
        global_step, step = self._steps.taken_and_index()
        if self._seen_global_step is None:
            self._seen_global_step = global_step
        if global_step == self._seen_global_step:
            return  # still accumulating micro-batches of this optimizer step
        self._seen_global_step = global_step
        if self._micro:
            step_loss = self._micro[0] if len(self._micro) == 1 else _stacked(self._micro).mean()
            self._pending_steps.append(step)
            self._pending_losses.append(step_loss)
            self._micro = []
        else:
            self.steps_without_loss += 1
        if self.train_metric is not None:
            self._take_train_metric(trainer, step)
        # On the steps whose index + 1 is a multiple of the cadence, or once that many are pending, and where the run
        # ends, as the gradient norms are; the same steps on every rank.
        every = self._flush_every
        due = (step + 1) % every == 0 or len(self._pending_steps) >= every
        if due or run_ends_at(trainer, step, self._max_steps, self._single):
            self.flush(trainer)

    @guarded
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._coefficient_looks = max(self._coefficient_looks, 1)  # a weight the module logs from this epoch on
        # A metric logged with `on_epoch=True` only reaches `callback_metrics` at the epoch's end: taken here, at the
        # epoch's last step (read at the next step, it lay a step late, and the last epoch's was never read).
        if self.train_metric is None or self._steps is None:
            return
        if f"{self.train_metric}_step" in trainer.callback_metrics:
            return  # logged every step too: its steps' values are the series, not the epoch's mean
        self._take_train_metric(trainer, self._steps.index(after_step=True))

    def _take_train_metric(self, trainer: Any, step: int) -> None:
        """The monitored training metric of this step, if the module logged it anew (kept on the device till flush)."""
        metrics = trainer.callback_metrics
        value = metrics.get(self.train_metric, metrics.get(f"{self.train_metric}_step"))
        if isinstance(value, torch.Tensor) and value.numel() == 1 and self._is_new(self.train_metric, value):
            self._pending_metric.append((step, value.detach().reshape(())))

    def _is_new(self, name: str, value: torch.Tensor) -> bool:
        """Whether ``value`` was logged since ``name`` was last recorded (a host-side check: no device sync)."""
        seen = self._metric_seen.get(name)
        if seen is not None and seen.data_ptr() == value.data_ptr():
            return False
        self._metric_seen[name] = value
        return True

    def flush(self, trainer: Any) -> None:
        """Move pending per-step losses to the host (one transfer; one collective under DDP) and record them."""
        if self._pending_metric:
            values = torch.stack([v.float() for _, v in self._pending_metric]).tolist()
            for (step, _), value in zip(self._pending_metric, values, strict=True):
                self.history.append(self.train_metric, step, value)
            self._pending_metric = []
        if not self._pending_steps:
            return
        if self._coefficient_looks:
            self._take_coefficients(trainer, self._pending_steps[-1])
        self.flushes += 1
        losses = _stacked(self._pending_losses)
        if self._scale != 1.0:
            losses = losses * self._scale
        if getattr(trainer, "world_size", 1) > 1:
            losses = trainer.strategy.reduce(losses, reduce_op="mean")
        for step, value in zip(self._pending_steps, losses.tolist(), strict=True):
            self.history.append(TRAIN_LOSS, step, value)
        self._pending_steps, self._pending_losses = [], []

    def _take_coefficients(self, trainer: Any, step: int) -> None:
        """The weights of the objective's terms the module logs, as they stand at ``step`` (one transfer for all)."""
        taken: list[tuple[str, Any]] = []
        for name, value in trainer.callback_metrics.items():
            known = self._coefficient.get(name)
            if known is None:
                known = self._coefficient[name] = self._names_a_coefficient(name)
            if known and (isinstance(value, torch.Tensor) and value.numel() == 1 or isinstance(value, (int, float))):
                taken.append((name, value))
        if not taken:
            self._coefficient_looks -= 1
            return
        self._coefficient_looks = _COEFFICIENT_LOOKS
        tensors = [value.detach().reshape(()) for _, value in taken if isinstance(value, torch.Tensor)]
        if tensors and tensors[0].device.type != "cpu":  # one transfer for all, at the losses' own
            host = iter(torch.stack([tensor.float() for tensor in tensors]).tolist())
        else:
            host = iter([tensor.item() for tensor in tensors])  # a stack costs ten times as much on a CPU
        for name, value in taken:
            value = next(host) if isinstance(value, torch.Tensor) else float(value)
            if math.isfinite(value):
                self.history.append(name, step, value)

    def _names_a_coefficient(self, name: str) -> bool:
        """Whether ``name``, logged by the module, is a weight of its objective's terms to record (not a metric this
        capture records already, not an epoch's mean, and no more than ``MAX_COEFFICIENTS`` of them)."""
        if name == self.train_metric or name.endswith("_epoch") or name.startswith(METRIC_PREFIX):
            return False
        if self._is_metric(name) or sum(self._coefficient.values()) >= MAX_COEFFICIENTS:
            return False
        return names_a_coefficient(name)

    @guarded
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not fitting(trainer):
            return  # `trainer.validate()` after (or before) fitting: no point of the run's own curve
        self.flush(trainer)
        step = int(trainer.global_step)  # optimizer steps done: validation at step k sees the weights after k updates
        for name, value in trainer.callback_metrics.items():
            if not self._is_metric(name):
                continue
            if isinstance(value, torch.Tensor):
                if value.numel() != 1 or not self._is_new(name, value):
                    continue  # a metric this validation did not log keeps its last value: no new point
                value = value.item()  # validation already synchronised the device
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.history.append(name, step, float(value))

    @guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.flush(trainer)
        self._trainer = None

    def flush_pending(self) -> None:
        """Flush now if training is under way (Lightning reads callback state on every rank while checkpointing, so
        the steps measured since the last flush reach the saved history)."""
        if self._trainer is not None:
            self.flush(self._trainer)

    def state_dict(self) -> dict[str, Any]:
        self.flush_pending()
        return self._save_history({})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._load_history(checked_mapping("the LossCapture state", state_dict))

    def pending_steps(self) -> int:
        """Optimizer steps measured but not yet moved to the host."""
        return len(self._pending_steps)
