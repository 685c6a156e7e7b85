"""PendingNorms: the gradient norms of a run's steps, kept where they were measured until the next move to the host."""

from __future__ import annotations

import math

import torch

from curvecast.history import RunHistory
from curvecast.series import GRAD_NORM

__all__ = ["PendingNorms"]


class PendingNorms:
    """Gradient norms measured since the last move to the host: 0-d device tensors on an accelerator (read in one
    transfer, the cadence's one host sync), floats on a CPU."""

    def __init__(self) -> None:
        self._steps: list[int] = []
        self._values: list[torch.Tensor | float] = []

    def __bool__(self) -> bool:
        return bool(self._steps)

    def add(self, step: int, norm: torch.Tensor | float) -> None:
        self._steps.append(step)
        self._values.append(norm)

    def clear(self) -> None:
        self._steps, self._values = [], []

    def record(self, history: RunHistory, on_host: bool, loss_scaled: bool) -> float | None:
        """Record the pending norms into ``history`` as ``grad_norm`` and return the last one recorded (None if none).

        Under fp16 AMP (``loss_scaled``) a non-finite norm is an overflow the scaler skips the step for, no training
        anomaly: it is left out.
        """
        steps, values = self._steps, self._values
        self.clear()
        if not steps:
            return None
        if not on_host:
            values = torch.stack(values).tolist()
        last = None
        for step, value in zip(steps, values, strict=True):
            if loss_scaled and not math.isfinite(value):
                continue
            history.append(GRAD_NORM, step, value)
            last = value
        return last
