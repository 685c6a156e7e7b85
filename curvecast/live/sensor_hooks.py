"""The per-step hooks of the bundle's sensors, bound once: the bundle calls only the hooks a sensor defines.

A call to a hook a sensor leaves to Lightning's no-op base costs about a microsecond, a few per step for nothing. The
built-in sensors do nothing in ``on_before_zero_grad``: that hook is left to Lightning's no-op unless a configured
sensor acts there (a forwarding loop would cost each step a few microseconds for nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from curvecast._lightning import Callback
from curvecast.callbacks.sensor import Sensor

__all__ = ["PER_STEP_HOOKS", "per_step_hooks", "zero_grad_forwarder"]

PER_STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
                  "on_train_batch_end")  # fmt: skip


def _defines(sensor: Sensor, hook: str) -> bool:
    """Whether ``sensor`` does something in ``hook`` (its class overrides Lightning's no-op)."""
    return getattr(type(sensor), hook) is not getattr(Callback, hook)


def per_step_hooks(sensors: Sequence[Sensor]) -> dict[str, list[Callable[..., Any]]]:
    """For each of ``PER_STEP_HOOKS``, the bound hooks of the ``sensors`` that define it, in the sensors' order."""
    return {name: [getattr(s, name) for s in sensors if _defines(s, name)] for name in PER_STEP_HOOKS}


def zero_grad_forwarder(sensors: Sequence[Sensor]) -> Callable[[Any, Any, Any], None] | None:
    """A hook that forwards ``on_before_zero_grad`` to the sensors that act there, or None when none does."""
    hooks = [s.on_before_zero_grad for s in sensors if _defines(s, "on_before_zero_grad")]
    if not hooks:
        return None

    def forward_zero_grad(trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for hook in hooks:
            hook(trainer, pl_module, optimizer)

    return forward_zero_grad
