"""FLOPs of a training step, counted once, and the peak FLOP/s of the device (for MFU)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["StepFlopCounter", "peak_flops_per_sec", "precision_dtype"]

_PRECISION_DTYPES = {
    "64": torch.float64,
    "32": torch.float32,
    "16": torch.float16,
    "bf16": torch.bfloat16,
    "transformer-engine": torch.bfloat16,
}


def precision_dtype(precision: Any) -> torch.dtype:
    """The compute dtype of a Lightning precision setting (``"bf16-mixed"`` -> bfloat16, ``"32-true"`` -> float32)."""
    text = str(precision).lower()
    for prefix in sorted(_PRECISION_DTYPES, key=len, reverse=True):
        if text.startswith(prefix):
            return _PRECISION_DTYPES[prefix]
    return torch.float32


def peak_flops_per_sec(device: torch.device, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of one device from Lightning's table; None on CPU and for unknown chips."""
    if device.type != "cuda":
        return None
    try:
        from lightning_fabric.utilities.throughput import get_available_flops
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown chip only means no MFU
        flops = get_available_flops(device, dtype)
    return float(flops) if flops else None


class _NoModuleTracking:
    """Stands in for ``FlopCounterMode``'s module tracker: every count goes to ``"Global"``, the one total read here.

    The tracker hooks each module's inputs and outputs into autograd (``register_multi_grad_hook``), and that hook
    raises inside ``torch.autograd.grad`` of an output with respect to a leaf input (a WGAN-GP or R1 gradient
    penalty): counting the FLOPs of such a step crashed the user's training step.
    """

    parents = frozenset({"Global"})

    def __enter__(self) -> _NoModuleTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class StepFlopCounter:
    """Count the FLOPs between :meth:`start` and :meth:`stop` with ``torch.utils.flop_counter.FlopCounterMode``.

    Only matmul-like operators count (as in MFU definitions); the mode costs Python dispatch on every operator, so it
    is meant to span one micro-batch, once per run. Counts the backward pass too (it runs under the same mode). No
    per-module breakdown is kept (see :class:`_NoModuleTracking`).
    """

    def __init__(self) -> None:
        self._mode: Any = None

    @property
    def running(self) -> bool:
        return self._mode is not None

    def start(self) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        mode = FlopCounterMode(display=False)
        mode.mod_tracker = _NoModuleTracking()  # read by its __enter__, __exit__ and counts alone
        mode.__enter__()
        self._mode = mode

    def stop(self) -> int | None:
        """Leave the mode; the FLOPs counted, or None if it was not running."""
        mode, self._mode = self._mode, None
        if mode is None:
            return None
        mode.__exit__(None, None, None)
        return int(mode.get_total_flops())


def is_compiled(pl_module: Any) -> bool:
    """True for a module under ``torch.compile``, where a dispatch mode around the step could break tracing."""
    return getattr(pl_module, "_compiler_ctx", None) is not None or any(
        type(m).__name__ == "OptimizedModule" for m in pl_module.modules()
    )


def to_host_number(value: Any) -> Any:
    """A count that may be a device tensor stays one until the cadence; Python numbers pass through."""
    if isinstance(value, torch.Tensor):
        return value.detach().reshape(()).to(torch.float64)
    return float(value)
