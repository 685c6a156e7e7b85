"""NonFiniteGuard: stop a run at the step its loss turns NaN or infinite, before that step's update lands.

A non-finite loss makes every gradient of its step non-finite: the optimizer step would write NaN into every weight,
and a checkpoint of that step (``ModelCheckpoint`` runs after curvecast's hooks, and does not look at
``trainer.should_stop``) would keep them. The guard reads the loss of each micro-batch of the step in
``on_before_optimizer_step``, before the update; on a non-finite value it drops the step's gradients (a parameter
without a gradient is skipped by every PyTorch optimizer, as ``GradScaler`` skips an overflowing step), so the
weights stay as they were, and stops the run at once.

Under DDP a NaN loss on one rank reaches every rank through the gradient all-reduce, but the losses themselves differ:
each rank checks the all-reduced gradients too (one fused norm per step), so all ranks reach the same decision at the
same step without a collective. With fp16 AMP an infinite gradient is the loss scaler's business (it skips the step and
lowers the scale), so there only the loss is checked.

Cost: on the CPU reading a scalar is free. On an accelerator the check would wait for the device every step, so the
guard stays off there and non-finite losses are caught when the loss reaches the host (the logging cadence).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from curvecast._lightning import optimizer_step_index
from curvecast.callbacks.measures.gradient_tensors import grad_scale, squared_norms
from curvecast.forecasting.anomalies import Anomaly
from curvecast.series import TRAIN_LOSS

__all__ = ["NonFiniteGuard"]


class NonFiniteGuard:
    """Check each optimizer step's loss (and, under DDP, its gradients) before the update; on NaN or inf, skip the
    update and stop the run.

    Attributes:
        tripped: the :class:`~curvecast.forecasting.Anomaly` of the step that stopped the run, or None.
    """

    def __init__(self) -> None:
        self.tripped: Anomaly | None = None
        self._bad: float | None = None  # the first non-finite loss of the step's micro-batches
        self._active = False

    def on_train_start(self, trainer: Any) -> None:
        device = getattr(trainer.strategy, "root_device", torch.device("cpu"))
        self._active = device.type == "cpu"
        self._bad = None
        self.tripped = None

    def on_before_backward(self, loss: Any) -> None:
        # Read at once: one scalar read, where keeping the tensor for later costs a detach and two more ops (each
        # tensor op in a hook runs cold after the backward pass: 10-40 us on a small CPU step). `item`, not `float`:
        # torch warns when a tensor that requires grad is turned into a number by `float`.
        if self._active and self._bad is None and isinstance(loss, torch.Tensor):
            value = loss.item() if loss.numel() == 1 else float(loss.detach().float().sum())
            if not math.isfinite(value):
                self._bad = value

    def on_before_optimizer_step(self, trainer: Any, optimizer: Any) -> bool:
        """Return whether the step was stopped (its gradients dropped and ``trainer.should_stop`` set)."""
        bad, self._bad = self._bad, None
        if not self._active or self.tripped is not None:
            return False
        if bad is None and getattr(trainer, "world_size", 1) > 1 and grad_scale(trainer) is None:
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            total = float(squared_norms(grads).sum()) if grads else 0.0
            if not math.isfinite(total):
                bad = total
        if bad is None:
            return False
        step = optimizer_step_index(trainer)
        optimizer.zero_grad(set_to_none=True)  # the optimizer skips parameters without gradients: weights unchanged
        trainer.should_stop = True
        message = (
            f"The training loss became {bad} at step {step}; the run was stopped at that step and its update was "
            "skipped, so the weights (and any checkpoint) keep their last finite values. Common causes: a learning "
            "rate too high, a log or division of zero, fp16 overflow without a loss scaler."
        )
        self.tripped = Anomaly("nonfinite", step, "critical", message, TRAIN_LOSS, math.inf, bad)
        return True
