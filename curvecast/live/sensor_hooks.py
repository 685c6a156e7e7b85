"""The per-step hooks of the bundle's sensors, looked up once, and how the bundle calls them every step.

A call to a hook a sensor leaves to Lightning's no-op base costs about a microsecond, a few per step for nothing: the
bundle calls only the hooks a sensor defines. The built-in sensors do nothing in ``on_before_zero_grad``: that hook is
left to Lightning's no-op unless a configured sensor acts there. A sensor's hook under
:func:`~curvecast.failsafe.guarded` is called bare inside :func:`forward`'s own ``try`` (one Python frame less per hook
and step, a microsecond or so run cold after the backward pass), with the same single warning when it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from curvecast._lightning import Callback
from curvecast.callbacks.sensor import Sensor
from curvecast.failsafe import hook_failed

__all__ = ["PER_STEP_HOOKS", "SensorHooks", "StepHook", "forward", "per_step_hooks", "zero_grad_forwarder"]

PER_STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
                  "on_train_batch_end")  # fmt: skip
# A hook as the bundle calls it: ``function(sensor, *args)``, the sensor, and whether the bundle guards it.
StepHook = tuple[Callable[..., Any], Sensor, bool]


def _defines(sensor: Sensor, hook: str) -> bool:
    """Whether ``sensor`` does something in ``hook`` (its class overrides Lightning's no-op)."""
    return getattr(type(sensor), hook) is not getattr(Callback, hook)


def _step_hook(sensor: Sensor, hook: str) -> StepHook:
    """``sensor``'s ``hook`` as the bundle calls it every step: a method under ``guarded`` bare (the bundle guards
    it), any other as it is, its exceptions its own."""
    if hook in vars(sensor):  # set on the instance (a wrapper): called as set
        bound = getattr(sensor, hook)
        return (lambda _sensor, *args: bound(*args)), sensor, False
    function = getattr(type(sensor), hook)
    inner = getattr(function, "__guarded__", None)
    return (inner, sensor, True) if inner is not None else (function, sensor, False)


def per_step_hooks(sensors: Sequence[Sensor]) -> dict[str, list[StepHook]]:
    """For each of ``PER_STEP_HOOKS``, the hooks of the ``sensors`` that define it and act in it this fit (see
    :meth:`Sensor.idle_hooks`), in the sensors' order."""
    idle = {id(s): s.idle_hooks() for s in sensors}
    return {
        name: [_step_hook(s, name) for s in sensors if _defines(s, name) and name not in idle[id(s)]]
        for name in PER_STEP_HOOKS
    }


class SensorHooks(dict):
    """``per_step_hooks(sensors)`` by hook name, pickled as its sensors and looked up again on the other side: a
    spawned DDP worker gets the bundle pickled, and a guarded hook's bare function is no module attribute (its guarded
    wrapper is). A dict, so that the lookup every step costs what a dict's does."""

    def __init__(self, sensors: Sequence[Sensor]) -> None:
        super().__init__(per_step_hooks(sensors))
        self.sensors = list(sensors)

    def __reduce__(self) -> tuple[type[SensorHooks], tuple[list[Sensor]]]:
        return SensorHooks, (self.sensors,)


def forward(hooks: list[StepHook], *args: Any) -> None:
    """Call each of ``hooks`` with ``args``; a guarded one that fails is one warning (what ``guarded`` does), and the
    others go on."""
    for hook, sensor, ours in hooks:
        try:
            hook(sensor, *args)
        except Exception as error:  # noqa: BLE001 - what `guarded` would do, in this frame
            if not ours:
                raise
            hook_failed(sensor, hook, error)


def zero_grad_forwarder(sensors: Sequence[Sensor]) -> Callable[[Any, Any, Any], None] | None:
    """A hook that forwards ``on_before_zero_grad`` to the sensors that act there, or None when none does."""
    hooks = [s.on_before_zero_grad for s in sensors if _defines(s, "on_before_zero_grad")]
    if not hooks:
        return None

    def forward_zero_grad(trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for hook in hooks:
            hook(trainer, pl_module, optimizer)

    return forward_zero_grad
