"""Where the small-batch gradient norms come from: parameter hooks (micro-batches) or module hooks (per example).

Both accumulate on the device during backward and hand over one tensor per micro-batch. Any error inside a hook
disables the source (with one warning) instead of propagating into the user's backward pass.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from typing import Any

import torch
from torch import nn

from curvecast.callbacks.measures.gns_cadence import cost_clock
from curvecast.callbacks.measures.per_example_norms import module_sq_norms, supported_params
from curvecast.failsafe import tell_once, warn_once

__all__ = ["MicroBatchNorms", "PerExampleNorms", "hook_seconds", "measured_parameters", "measuring_source"]

log = logging.getLogger("curvecast")
# Said of a run with several optimizers (a GAN): B_simple needs one objective's gradient; the norm is still measured.
_SEVERAL_OPTIMIZERS = (
    "curvecast: GradientNoiseScale measures only runs with one optimizer; B_simple is off (the gradient norm of the "
    "first optimizer is still recorded)"
)


def _tell(message: str, asked: bool, key: str | None = None) -> None:
    """Say why part of the noise scale is off: a warning where the user set the measure up, an info line once where
    ``Curvecast()`` measures it by default, asked for by no one (a siamese encoder, an RNN cell or tied embeddings
    reuse a layer in every forward pass: a warning there is noise the user cannot act on)."""
    if asked:
        warn_once(message, key=key)
    else:
        tell_once(message)


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32)


class MicroBatchNorms:
    """Squared norm of each micro-batch's local gradient, from ``Tensor.register_hook`` on every trainable parameter.

    The hooks fire with the gradient of one backward pass, before it is added into ``.grad`` and before DDP's
    all-reduce. Cost: one read of every gradient per micro-batch (a norm kernel per parameter), no extra memory.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.enabled = False
        self.failed = False
        self.seconds = 0.0  # host seconds spent in the hooks while enabled (the sampling's cost, see SampleCadence)
        self._norms: list[torch.Tensor] = []
        self._handles: list[Any] = []

    def attach(self) -> None:
        """Hook every parameter (once: a second call while attached does nothing)."""
        if not self._handles:
            self._handles = [p.register_hook(self._hook) for p in self.params]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, grad: torch.Tensor) -> None:
        if not self.enabled or self.failed:
            return
        begun = cost_clock()
        try:
            if grad.is_sparse:
                grad = grad.coalesce()._values()
            self._norms.append(torch.linalg.vector_norm(grad, dtype=_work_dtype(grad)))
        except Exception as error:  # noqa: BLE001 - never break the user's backward pass
            self.failed = True
            warn_once(f"curvecast: micro-batch gradient norms disabled ({type(error).__name__}: {error})")
        self.seconds += cost_clock() - begun

    def take(self) -> torch.Tensor | None:
        """Sum of squared norms since the last call (a 0-d device tensor), or None if no hook fired."""
        norms, self._norms = self._norms, []
        if not norms or self.failed:
            return None
        return torch.stack([n.to(torch.float64) for n in norms]).square().sum()


class PerExampleNorms:
    """Per-example squared gradient norms of the supported layers of ``root``, from module and tensor hooks.

    A forward hook keeps a reference to the layer input (autograd keeps it anyway for the weight gradient) and hooks
    the output; when its gradient arrives, :func:`module_sq_norms` turns input and output gradient into a ``(B,)``
    tensor of squared norms, summed over layers. Layers the formulas cannot account for are left out, and so must
    their parameters be from the big-batch norm (:attr:`params`): layers of other types, parameters shared by two
    layers, and layers called more than once in a forward pass (their per-example gradient is a sum of calls).
    """

    def __init__(self, root: nn.Module, asked: bool = True) -> None:
        self.asked = asked  # the user set the measure up: a layer left out is a warning, not an info line
        candidates: dict[nn.Module, list[nn.Parameter]] = {}
        for module in root.modules():
            params = supported_params(module)
            if params is not None:
                candidates[module] = params
        owners = Counter(id(p) for params in candidates.values() for p in params)
        self.layers = {m: ps for m, ps in candidates.items() if all(owners[id(p)] == 1 for p in ps)}
        self.enabled = False
        self.failed = False
        self.valid = True
        self.seconds = 0.0  # host seconds spent in the hooks (the sampling's cost, see SampleCadence)
        self._calls: Counter[nn.Module] = Counter()
        self._per_layer: dict[nn.Module, torch.Tensor] = {}
        self.covered: set[int] = set()  # ids of the parameters the last `take` accounted for
        self._handles: list[Any] = []

    @property
    def params(self) -> list[nn.Parameter]:
        """The parameters whose per-example norms are measured (the big-batch norm must use exactly these)."""
        return [p for ps in self.layers.values() for p in ps]

    def attach(self) -> None:
        """Hook every measured layer (once: a second call while attached does nothing)."""
        if not self._handles:
            self._handles = [m.register_forward_hook(self._forward_hook) for m in self.layers]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def start_micro_batch(self) -> None:
        self._calls.clear()
        self._per_layer = {}
        self.valid = True

    def _forward_hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        begun = cost_clock()
        try:
            self._hook_output(module, inputs, output)
        finally:
            self.seconds += cost_clock() - begun

    def _hook_output(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not self.enabled or self.failed or not torch.is_grad_enabled():
            return
        if not isinstance(output, torch.Tensor) or not output.requires_grad or module not in self.layers:
            return
        if not inputs or not isinstance(inputs[0], torch.Tensor):
            self.valid = False  # called with keyword arguments: the input is not visible here
            return
        self._calls[module] += 1
        if self._calls[module] > 1:
            self.layers.pop(module, None)
            self.valid = False
            _tell(
                f"curvecast: a {type(module).__name__} layer runs more than once per forward pass; its parameters are "
                "left out of the per-example gradient noise scale",
                self.asked,
                key=f"per-example-reuse-{id(module)}",
            )
            return
        output.register_hook(partial(self._grad_hook, module, inputs[0].detach()))

    def _grad_hook(self, module: nn.Module, inputs: torch.Tensor, grad: torch.Tensor) -> None:
        if self.failed or module not in self.layers:
            return
        begun = cost_clock()
        try:
            with torch.no_grad():
                norms = module_sq_norms(module, inputs, grad)
            if norms is not None:
                self._per_layer[module] = norms
        except Exception as error:  # noqa: BLE001 - never break the user's backward pass
            self.failed = True
            warn_once(f"curvecast: per-example gradient norms disabled ({type(error).__name__}: {error})")
        self.seconds += cost_clock() - begun

    def take(self, rows: int | None = None) -> torch.Tensor | None:
        """This micro-batch's ``(B,)`` per-example squared norms (summed over layers), or None if unusable.

        A layer whose input has no batch dimension of ``rows`` (a position embedding indexed by ``arange(T)``, a
        broadcast input) has no per-example gradient: it is left out from now on, its parameters with it.
        """
        per_layer, self._per_layer = self._per_layer, {}
        if not per_layer or not self.valid or self.failed:
            return None
        rows = rows if rows is not None else Counter(n.shape[0] for n in per_layer.values()).most_common(1)[0][0]
        for module, norms in per_layer.items():
            if norms.shape[0] != rows and self.layers.pop(module, None) is not None:
                warn_once(
                    f"curvecast: a {type(module).__name__} layer sees inputs without the batch dimension; its "
                    "parameters are left out of the per-example gradient noise scale",
                    key=f"per-example-batchless-{id(module)}",
                )
        kept = [module for module in per_layer if module in self.layers]
        # Layers whose hooks did not fire (an nn.Linear called through its weight, as attention does with out_proj,
        # or a layer skipped this step) are no part of this micro-batch's norms, so none of the big batch's either.
        self.covered = {id(p) for module in kept for p in self.layers[module]}
        return torch.stack([per_layer[module] for module in kept]).sum(dim=0) if kept else None


def hook_seconds(*sources: MicroBatchNorms | PerExampleNorms | None) -> float:
    """CPU seconds the sources' hooks took in this step's forward and backward passes (reset by the read)."""
    seconds = 0.0
    for hooks in sources:
        if hooks is not None:
            seconds, hooks.seconds = seconds + hooks.seconds, 0.0
    return seconds


def measured_parameters(trainer: Any, pl_module: nn.Module) -> tuple[Any, list[nn.Parameter]]:
    """The optimizer whose steps' gradient norms are measured (None: every step's) and the parameters measured: every
    trainable one; with several optimizers stepped by hand (a GAN), the first optimizer's, at its own steps, as the LR
    capture follows it. A norm of every gradient there mixed the players', and another's left from its last step: a
    WGAN critic's (about 0.02) read with its generator's (about 1) made 30-45x "spikes" in every seed."""
    params = [p for p in pl_module.parameters() if p.requires_grad]
    optimizers = getattr(trainer, "optimizers", None) or []
    if len(optimizers) < 2:
        return None, params
    own = {id(p) for group in optimizers[0].param_groups for p in group["params"]}
    return optimizers[0], [p for p in params if id(p) in own]


def measuring_source(
    source: str, trainer: Any, pl_module: nn.Module, params: list[nn.Parameter], batches: int, asked: bool = True
) -> tuple[str | None, MicroBatchNorms | None, PerExampleNorms | None]:
    """The source a run measures the noise scale with and its hooks: ``source`` (``"auto"``: the micro-batches where
    ``batches``, accumulation x devices, gives a second batch size, the examples otherwise); ``(None, None, None)``,
    with a warning, where the run cannot be measured that way. A run with several optimizers is said so at info
    where the user did not ask for the measure (``asked``: a bundle's default part)."""
    if len(getattr(trainer, "optimizers", []) or []) > 1:
        # `Curvecast()` measures B_simple by default, asked for by no one, and every GAN has several optimizers: a
        # warning there is noise the user cannot act on. A GradientNoiseScale the user set up is warned.
        _tell(_SEVERAL_OPTIMIZERS, asked)
        return None, None, None
    if source == "auto":
        source = "microbatch" if batches > 1 else "per_example"
    if source == "microbatch":
        if batches == 1:
            warn_once(
                "curvecast: the micro-batch gradient noise scale needs gradient accumulation or several devices; "
                "B_simple is off (source='per_example' measures it on one device)"
            )
            return None, None, None
        return source, MicroBatchNorms(params), None
    per_example = PerExampleNorms(pl_module, asked)
    if not per_example.layers:
        _tell("curvecast: no Linear, Embedding or LayerNorm layer to measure per-example norms on", asked)
        return None, None, None
    return source, None, per_example
