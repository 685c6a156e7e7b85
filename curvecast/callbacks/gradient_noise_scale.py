"""GradientNoiseScale: B_simple = tr(Sigma) / |G|^2 of a live run, and the total gradient norm of its steps."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal

import torch

from curvecast._lightning import StepReader, host_cadence, logging_cadence, run_ends_at, trains_on_cpu
from curvecast.callbacks.measures import gns_cadence
from curvecast.callbacks.measures import gns_sources as sources
from curvecast.callbacks.measures.gns_cadence import NormCadence, SampleCadence, cost_clock
from curvecast.callbacks.measures.gns_estimator import GNSEstimate, GNSEstimator
from curvecast.callbacks.measures.gns_state import gns_state, read_gns_state
from curvecast.callbacks.measures.gns_step import small_batch_sq, step_norm, two_batch_pair
from curvecast.callbacks.measures.gradient_tensors import grad_scale, infer_batch_rows
from curvecast.callbacks.measures.pending_norms import PendingNorms
from curvecast.callbacks.sensor import Sensor
from curvecast.failsafe import guarded
from curvecast.history import RunHistory
from curvecast.series import GRAD_NORM, logged_name

__all__ = ["GradientNoiseScale"]

_SOURCES = ("auto", "microbatch", "per_example")
PER_EXAMPLE_EVERY = 10  # default sampling of the per-example source: keeps its average cost near 2-3 % of a step


class GradientNoiseScale(Sensor):
    """Estimate the gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018) while training.

    Squared gradient norms at a small and a big batch size feed the unbiased two-batch estimators of |G|^2 and
    tr(Sigma), each smoothed by its own EMA; ``b_simple`` is the ratio of the EMAs. Sources of the small batch:

    - ``"microbatch"``: each micro-batch's local gradient, from parameter hooks (needs gradient accumulation or DDP);
      the big batch is the accumulated, all-reduced ``.grad`` read in ``on_before_optimizer_step`` (after AMP
      unscaling, before clipping). B_small = micro-batch rows, B_big = rows x accumulation x world size.
    - ``"per_example"``: per-example gradient norms of Linear, Embedding, LayerNorm and RMSNorm layers from module
      hooks (B_small = 1); other parameters are left out of both norms. Assumes a loss averaged over the first
      (batch) dimension of the layer inputs.
    - ``"auto"`` (default): ``"microbatch"`` when accumulation or DDP provide a second batch size, else
      ``"per_example"``.

    B_simple is counted in the units the loss averages over (sequences for a token-mean language-model loss).
    The total gradient norm of the optimizer steps (before clipping) is recorded as well (``grad_norm``, see
    ``norm_every_n_steps``; every sampled step too). Values stay on the device and reach the host only at the logging
    cadence. The per-example source's module hooks are on the model only in the steps it samples (a hooked module
    takes the slow path of every call).

    Args:
        source: ``"auto"``, ``"microbatch"`` or ``"per_example"``.
        beta: EMA decay per measured step.
        min_updates: measured steps before ``b_simple`` is reported.
        sample_every_n_steps: measure the noise scale on one optimizer step in this many; the cost falls in
            proportion. None: every step for ``"microbatch"`` (a norm kernel per parameter and micro-batch), every
            ``PER_EXAMPLE_EVERY`` (10) steps for ``"per_example"`` (exact sequence-layer norms cost up to tens of
            percent of a step on small layers), and on a single CPU process, once ``min_updates`` samples are in,
            further apart where their measured cost would pass ``SAMPLE_SHARE`` (0.3 %) of the run's time
            (:class:`~curvecast.callbacks.measures.gns_cadence.SampleCadence`; :attr:`sample_spacing` says how far).
        norm_every_n_steps: measure the gradient norm of one optimizer step in this many. None: every step on an
            accelerator; on a CPU the last step before each move to the host (8 apart at most), and on one process
            further apart where the passes would cost more than ``NORM_SHARE`` (0.1 %) of the run's time
            (:class:`~curvecast.callbacks.measures.gns_cadence.NormCadence`, up to 128 steps apart).
        log_every_n_steps: optimizer steps between host transfers and logged values; None: the Trainer's (and on a
            single CPU process, where a transfer waits for nothing, each step's gradient norm is recorded at once).
        batch_size_fn: rows of a micro-batch, ``batch -> int``; default: the first dimension of its first tensor.
        history: where to record the series; a new one by default (``gns.history``).
        log_metrics: log ``curvecast/gns/...`` and ``curvecast/grad_norm`` through ``LightningModule.log``.

    Example::

        >>> gns = GradientNoiseScale()
        >>> gns.b_simple is None
        True
    """

    state_name = "gradient_noise"

    def __init__(
        self,
        source: Literal["auto", "microbatch", "per_example"] = "auto",
        beta: float = 0.99,
        min_updates: int = 10,
        sample_every_n_steps: int | None = None,
        log_every_n_steps: int | None = None,
        norm_every_n_steps: int | None = None,
        batch_size_fn: Callable[[Any], int] | None = None,
        history: RunHistory | None = None,
        log_metrics: bool = True,
    ) -> None:
        if source not in _SOURCES:
            raise ValueError(f"Expected `source` to be one of {_SOURCES}, but got {source!r}")
        spacings = {"sample_every_n_steps": sample_every_n_steps, "log_every_n_steps": log_every_n_steps,
                    "norm_every_n_steps": norm_every_n_steps}  # fmt: skip
        for name, every in spacings.items():
            if every is not None and every < 1:
                raise ValueError(f"Expected `{name}` to be a positive int or None, but got {every}")
        self.source = source
        self.norm_every_n_steps = norm_every_n_steps
        self.sample_every_n_steps = sample_every_n_steps
        self.log_every_n_steps = log_every_n_steps
        self.batch_size_fn = batch_size_fn
        self.log_metrics, self.asked = log_metrics, True  # asked: False in a bundle's default part (see `part`)
        super().__init__(history)
        self.estimator = GNSEstimator(beta=beta, min_updates=min_updates)
        self.estimate = GNSEstimate(None, None, None, 0)
        self.active_source: str | None = None  # the resolved source; None while not measuring
        self.last_grad_norm: float | None = None
        # The last measured step's squared norms: 0-d device tensors on an accelerator, floats on a CPU.
        self.last_small_sq: torch.Tensor | float | None = None
        self.last_big_sq: torch.Tensor | float | None = None
        self._micro: sources.MicroBatchNorms | None = None
        self._per_example: sources.PerExampleNorms | None = None
        self._params: list[torch.nn.Parameter] = []
        self._follow: Any = None  # with several optimizers, the one whose gradients are measured (while training)
        self._accumulate = 1
        self._world = 1
        self._on_host = True  # a CPU: the step's arithmetic on Python floats; an accelerator: on device tensors
        # One backward pass per optimizer step and per-example norms: the sample's small batch is taken at the step
        # (``on_after_backward`` is then idle; a bundle calls it no more).
        self._take_at_step = False
        self._cadence = SampleCadence(1, 1, adaptive=False, warmup=0)
        self._norms = NormCadence(1, adaptive=False)  # the steps whose gradient norm is measured
        self._log_every, self._max_steps = 50, -1  # the logging cadence and the run length, read at the start
        self._record_norms_every: int | None = None  # on one CPU, norms are recorded sooner than the logging cadence
        self._reset_step()
        self._pending = PendingNorms()
        self._stepped = False
        self._step = self._stepped_at = 0
        self._steps: StepReader | None = None  # the Trainer's step counters, from the start of training
        self._trainer: Any = None  # while training
        self._last_step: int | None = None
        self._recorded_updates = 0  # estimator updates already recorded into the history

    @property
    def sample_spacing(self) -> int:
        """Optimizer steps between the steps the noise scale is measured on, as of now (``sample_every_n_steps``)."""
        return self._cadence.every

    @property
    def b_simple(self) -> float | None:
        """The current estimate of tr(Sigma) / |G|^2 (as of the last logging cadence), or None."""
        return self.estimate.b_simple

    def _reset_step(self) -> None:
        self._open = False
        self._sampling = False
        self._started = 0.0  # wall seconds: when the sampled step began
        self._cost = 0.0  # CPU seconds of this sampled step's own work in its hooks so far (see `cost_clock`)
        self._valid = True
        self._small_sum: torch.Tensor | float | None = None
        self._small_count = 0
        self._rows: list[int] = []

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._drop_sources()
        self._reset_step()
        self._pending.clear()
        self._recorded_updates = self.estimator.read().updates  # restored from a checkpoint, or 0
        self._follow, self._params = sources.measured_parameters(trainer, pl_module)
        automatic = getattr(pl_module, "automatic_optimization", True)
        self._accumulate = int(trainer.accumulate_grad_batches) if automatic else 1
        self._world = int(getattr(trainer, "world_size", 1))
        self._steps = StepReader(trainer)
        self._trainer = trainer  # for `flush_pending`, until training ends
        self._on_host = trains_on_cpu(trainer)
        # The norms move to the host with the losses (unless a cadence was asked for): the detectors pair a norm with
        # its step's loss in the batch they come in, and a divergence is stopped soon after the step it is confirmed
        # at, not at the next logging step.
        self._record_norms_every = host_cadence(trainer) if self.log_every_n_steps is None else None
        self.active_source, self._micro, self._per_example = sources.measuring_source(
            self.source, trainer, pl_module, self._params, self._accumulate * self._world, asked=self.asked
        )
        self._take_at_step = self.active_source == "per_example" and self._accumulate == 1 and automatic
        default_every = PER_EXAMPLE_EVERY if self.active_source == "per_example" else 1
        # On a CPU the training thread itself takes the gradient norm (a pass over every gradient, 0.05-0.25 ms on a
        # 0.3-0.6M-parameter MLP), on the last step before a move of the losses to the host, with which it reaches the
        # detectors; on an accelerator it costs the host three kernel launches, every step.
        base = self.norm_every_n_steps or (host_cadence(trainer) if self._on_host else 1)
        self._norms = NormCadence(base, adaptive=self.norm_every_n_steps is None and self._on_host and self._world == 1,
                                  share=gns_cadence.NORM_SHARE)  # fmt: skip
        # Unless a spacing was asked for, per-example samples on one CPU are spaced so that they cost a bounded share of
        # the run (see SampleCadence). An accelerator's cost is device time the host clock does not see, and the ranks
        # of a DDP run time their steps apart: the default spacing there, as for the micro-batch source (every step,
        # each with its gradient norm).
        adaptive = self.sample_every_n_steps is None and self.active_source == "per_example"
        self._cadence = SampleCadence(self.sample_every_n_steps or default_every, base,
                                      adaptive=adaptive and self._on_host and self._world == 1,
                                      warmup=max(self.estimator.min_updates - self._recorded_updates, 0),
                                      share=gns_cadence.SAMPLE_SHARE)  # fmt: skip
        self._log_every = self.log_every_n_steps or logging_cadence(trainer)
        self._max_steps = int(getattr(trainer, "max_steps", -1) or -1)

    def _detach(self) -> None:
        """Take the sources' hooks off the model (they go back on at the next sampled step)."""
        for hooks in (self._micro, self._per_example):
            if hooks is not None:
                hooks.detach()

    def _drop_sources(self) -> None:
        self._detach()
        self._micro = self._per_example = None

    # -- per micro-batch --------------------------------------------------------------------------------------------

    @guarded
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self._open:  # a new step: the last one left nothing to reset (a sampled step resets at its end)
            self._open = True
            self._step = step = self._steps.index()  # the step's, read once: the optimizer hook reuses it
            self._sampling = self.active_source is not None and self._cadence.due(step)
            if self._sampling:
                self._started = time.perf_counter()
        if not self._sampling:
            return
        begun = cost_clock()
        rows = self.batch_size_fn(batch) if self.batch_size_fn is not None else infer_batch_rows(batch)
        if rows is None:
            self._valid = False
        else:
            self._rows.append(int(rows))
        if self._micro is not None:
            self._micro.attach()  # the hooks stay for the whole step, its micro-batches, and come off after it
            self._micro.enabled = True
        if self._per_example is not None:
            self._per_example.attach()
            self._per_example.start_micro_batch()
            self._per_example.enabled = True
        self._cost += cost_clock() - begun

    def idle_hooks(self) -> frozenset[str]:
        idle = self.active_source is None or self._take_at_step
        return frozenset({"on_after_backward"}) if idle else frozenset()

    @guarded
    def on_after_backward(self, trainer: Any, pl_module: Any) -> None:
        if not self._sampling or self._take_at_step:
            return
        begun = cost_clock()
        try:
            self._take_small_batch(trainer)
        finally:
            self._cost += cost_clock() - begun

    def _take_small_batch(self, trainer: Any) -> None:
        """Add this micro-batch's small-batch squared norm, from the source's hooks, to the step's."""
        rows = self._rows[-1] if self._rows else None
        taken = small_batch_sq(self._micro, self._per_example, rows, self._accumulate, grad_scale(trainer),
                               self._on_host)  # fmt: skip
        if taken is None:
            self._valid = False
            return
        value, count = taken
        self._small_sum = value if self._small_sum is None else self._small_sum + value
        self._small_count += count

    # -- per optimizer step -----------------------------------------------------------------------------------------

    @guarded
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self._stepped = True
        # The step read when it opened; a second optimizer step in the same batch finds it closed and reads anew.
        step = self._step if self._open else self._steps.index()
        self._stepped_at = step  # the batch's end records at the step of its last optimizer step
        if self._follow is not None and optimizer is not self._follow:
            self._open = False  # another player's step: the followed one, if it comes in this batch, reads its own
            return
        if not self._sampling:
            self._step_done(step)
            return
        started, cost, begun = self._started, self._cost, cost_clock()
        try:
            if self._take_at_step:
                self._take_small_batch(trainer)
            self._step_done(step)
        finally:
            cost += cost_clock() - begun + sources.hook_seconds(self._micro, self._per_example)
            self._cadence.sampled(step, started, cost)
            if self._cadence.every > 1:
                self._detach()  # until the next sampled step: hooks cost every forward and backward they are on
            self._reset_step()

    def _step_done(self, step: int) -> None:
        """The step's gradient norm (and its noise-scale update when sampled), on the cadences."""
        measured = self._sampling and self._valid and self._small_sum is not None
        norms = self._norms
        if not measured and not norms.due(step):
            self._open = False  # the next batch's start resets the step
            return  # neither a sampled step of the noise scale nor one whose gradient norm is measured
        with_grad = [p for p in self._params if p.grad is not None]
        if not with_grad:
            self._reset_step()
            return
        self._last_step = step
        timed = norms.adaptive and not measured  # a sample's pass is timed as part of the sample
        started, begun = (time.perf_counter(), cost_clock()) if timed else (0.0, 0.0)
        norm, sq = step_norm([p.grad for p in with_grad], self._on_host, per_parameter=measured)
        if timed:
            norms.measured(step, started, cost_clock() - begun)
        self._pending.add(step, norm)
        if sq is not None:
            covered = self._per_example.covered if self._per_example is not None else None
            small_mean = self._small_sum / self._small_count
            pair = two_batch_pair(sq, with_grad, self._rows, small_mean, covered, self._world, self._on_host,
                                  self._accumulate)  # fmt: skip
            if pair is not None:
                self.last_small_sq, self.last_big_sq = pair[0], pair[1]
                self.estimator.update(*pair)
        self._reset_step()

    @guarded
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._stepped:
            return
        self._stepped = False
        step = self._stepped_at  # what `optimizer_step_index(trainer, after_step=True)` gives now, read already
        if (step + 1) % self._log_every == 0 or run_ends_at(trainer, step, self._max_steps, self._world == 1):
            self.flush(trainer, pl_module, step)
        elif self._record_norms_every is not None and (step + 1) % self._record_norms_every == 0:
            # On the steps the losses reach the host too: the detectors pair each loss with its step's norm.
            self._record_norms(trainer)

    def flush_pending(self) -> None:
        """Record the gradient norms measured since the last move to the host, while training is under way (Lightning
        reads callback state while checkpointing: the saved history then holds them, as it holds the losses)."""
        if self._trainer is not None:
            self._record_norms(self._trainer)

    def _record_norms(self, trainer: Any) -> None:
        """Move the pending gradient norms to the host and record them."""
        if self._pending:
            last = self._pending.record(self.history, self._on_host, loss_scaled=grad_scale(trainer) is not None)
            self.last_grad_norm = last if last is not None else self.last_grad_norm

    def flush(self, trainer: Any, pl_module: Any | None = None, step: int | None = None) -> None:
        """Move pending values to the host, record them, and log them when ``pl_module`` is given.

        Under DDP every rank must call it at the same step: the EMAs are averaged over ranks (one collective).
        """
        self._record_norms(trainer)
        if self.active_source is not None:
            if self._world > 1:
                self.estimator.average_over_ranks(trainer.strategy)
            self.estimate = self.estimator.read()
        step = self._last_step if step is None else step
        series = self.estimate.series()
        if step is not None and self.active_source is not None and self.estimate.updates > self._recorded_updates:
            self._recorded_updates = self.estimate.updates
            for name, value in series.items():
                if value is not None:
                    self.history.append(name, step, value)
        if pl_module is not None and self.log_metrics:
            metrics = {GRAD_NORM: self.last_grad_norm, **series}
            for name, value in metrics.items():
                if value is not None and math.isfinite(value):
                    pl_module.log(logged_name(name), value, on_step=True, on_epoch=False, batch_size=1)

    @guarded
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:  # the losses move to the host here: their steps' norms go with them
            self.flush_pending()

    @guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.flush(trainer)
        self._drop_sources()
        self._trainer = self._follow = None

    @guarded
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._drop_sources()
        self._trainer = self._follow = None

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """A failed run gets no teardown hook: no hook of a sampled step is left on the model."""
        self._drop_sources()

    # -- checkpoint state -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain Python types only (checkpoints load with ``weights_only=True``)."""
        self.flush_pending()
        return self._save_history(gns_state(self.estimator, self.last_grad_norm))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a damaged one raises ``KeyError``, ``TypeError`` or
        ``ValueError`` naming the field, and changes nothing (every field is read before any is assigned)."""
        state, host, last_grad_norm = read_gns_state(state_dict, self.estimator)
        self._load_history(state)  # all or nothing: the last that can fail
        self.estimator.set_state(host)
        self.estimate = self.estimator.read()
        self.last_grad_norm = last_grad_norm
