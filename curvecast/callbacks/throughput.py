"""Throughput: where the time of each optimizer step goes, samples and items per second, MFU, and stragglers."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from curvecast._lightning import StepReader, logging_cadence
from curvecast.callbacks.measures.fetch_timer import FetchTimer
from curvecast.callbacks.measures.flops import (
    StepFlopCounter,
    is_compiled,
    peak_flops_per_sec,
    precision_dtype,
    to_host_number,
)
from curvecast.callbacks.measures.gradient_tensors import infer_batch_rows
from curvecast.callbacks.measures.throughput_stats import StepTiming, TimingWindow, percentile, straggler
from curvecast.callbacks.sensor import Sensor
from curvecast.failsafe import guarded
from curvecast.history import RunHistory
from curvecast.series import DATA_WAIT, STEP_TIME, logged_name, throughput
from curvecast.state_checks import checked_mapping, checked_real, checked_whole

__all__ = ["Throughput"]

_STATE_VERSION = 1
_WARMUP_STEPS = 1  # the first step of a fit pays for allocator warm-up, lazy inits and compilation


class Throughput(Sensor):
    """Time every optimizer step, split into data wait, forward+backward and the optimizer step, on every rank.

    Host timestamps from the hooks give the split: data wait is the time the loop spends fetching the next batch
    (timed around Lightning's own fetch, see :class:`FetchTimer`; the rest of the gap between batches, other
    callbacks and logging, is neither data wait nor compute; validation is excluded), forward+backward from batch
    start to ``on_before_optimizer_step`` (summed over the micro-batches of the step), the optimizer from there to the
    end of the batch. On a GPU the host may run ahead of
    the device; CUDA events around each step give the device time too, read once they have completed (``query``),
    never with a synchronize. Statistics are over the last ``window`` steps: medians, p90, samples/s, items/s (tokens
    through ``items_fn``), FLOP/s and MFU. FLOPs per micro-batch are counted once with ``torch.utils.flop_counter``
    (or given; the count includes matmuls other callbacks run inside that micro-batch, such as per-example gradient
    norms). Under DDP the per-rank medians are gathered at the logging cadence and the slowest rank is flagged when
    it is ``straggler_ratio`` times slower than the median rank in data wait plus forward time (step times come out
    equal under DDP, since every rank waits for the slowest in the gradient all-reduce; a rank slow in its backward
    pass alone is not told apart).

    Args:
        batch_size_fn: samples in a micro-batch, ``batch -> int``; default: first dimension of its first tensor.
        items_fn: items (e.g. tokens, without padding) in a micro-batch, ``batch -> int | Tensor``; a tensor stays
            on the device until the logging cadence.
        flops_per_batch: FLOPs of one micro-batch's forward and backward; None: counted on the first micro-batch.
        measure_flops: count FLOPs when ``flops_per_batch`` is None (skipped for compiled modules).
        peak_flops_per_sec: the device's peak for MFU; None: Lightning's table for known GPUs (no MFU on CPU).
        window: optimizer steps the statistics cover.
        straggler_ratio: slowest rank's median data wait + forward time over the median rank's that flags a straggler.
        log_every_n_steps: optimizer steps between logged values; None: the Trainer's.
        history: where to record the series; a new one by default (``throughput.history``).
        log_metrics: log ``curvecast/throughput/...`` through ``LightningModule.log``.
    """

    state_name = "throughput"

    # Where timestamps come from: the host's monotonic clock, read once or twice per hook (replaceable, e.g. by a
    # simulated clock in tests).
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(
        self,
        batch_size_fn: Callable[[Any], int] | None = None,
        items_fn: Callable[[Any], Any] | None = None,
        flops_per_batch: float | None = None,
        measure_flops: bool = True,
        peak_flops_per_sec: float | None = None,
        window: int = 100,
        straggler_ratio: float = 1.2,
        log_every_n_steps: int | None = None,
        history: RunHistory | None = None,
        log_metrics: bool = True,
    ) -> None:
        if straggler_ratio <= 1.0:
            raise ValueError(f"Expected `straggler_ratio` to be above 1, but got {straggler_ratio}")
        if log_every_n_steps is not None and log_every_n_steps < 1:
            raise ValueError(f"Expected `log_every_n_steps` to be a positive int or None, but got {log_every_n_steps}")
        self.batch_size_fn = batch_size_fn
        self.items_fn = items_fn
        self.flops_per_batch = flops_per_batch
        self.measure_flops = measure_flops
        self.peak_flops_per_sec = peak_flops_per_sec
        self.straggler_ratio = straggler_ratio
        self.log_every_n_steps = log_every_n_steps
        self.log_metrics = log_metrics
        super().__init__(history)
        self.timings = TimingWindow(window)
        self._items: deque[Any] = deque(maxlen=window)  # aligned with self.timings; tensors until the cadence
        self._device_times: deque[float] = deque(maxlen=window)
        self._events: deque[tuple[Any, Any]] = deque()
        self._flops = StepFlopCounter()
        self._fetch = FetchTimer(self.clock)
        self.metrics: dict[str, float] = {}  # the last logged values
        self.rank_metrics: list[list[float]] = []  # under DDP: per rank [step time, data wait, samples/s, busy]
        self.totals = {"steps": 0, "samples": 0, "seconds": 0.0}
        self._pending: list[tuple[int, StepTiming, Any, int]] = []  # (step, timing, items, micro-batches)
        self._t_last_end: float | None = None
        self._peak: float | None = None
        self._world = 1
        self._every, self._max_steps = 50, -1  # the logging cadence and the run length, read at the start of a fit
        self._fit_steps = 0
        self._steps: StepReader | None = None  # the Trainer's step counters, from the start of training
        self._batches_per_step = 1
        self._counting_flops = False  # a plain flag, where `_flops.running` is a property read every step
        self._new_step()

    def _new_step(self) -> None:
        self._open = False
        self._stepped = False
        self._wait = self._between = self._compute = self._forward = 0.0
        self._samples = self._batches = 0
        self._step_items: Any = 0.0
        self._t_batch = self._t_opt = 0.0
        self._skip = False
        self._start_event: Any = None

    @guarded
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._world = int(getattr(trainer, "world_size", 1))
        self._every = self.log_every_n_steps or logging_cadence(trainer)
        self._max_steps = int(getattr(trainer, "max_steps", -1) or -1)
        self._steps = StepReader(trainer)
        self._fetch = FetchTimer(self.clock)
        self._fetch.attach(trainer)
        self._t_last_end = None
        self._fit_steps = 0
        self._new_step()
        device = getattr(trainer.strategy, "root_device", torch.device("cpu"))
        self._cuda = device.type == "cuda"
        dtype = precision_dtype(getattr(trainer, "precision", "32-true"))
        self._peak = self.peak_flops_per_sec or peak_flops_per_sec(device, dtype)
        if self.flops_per_batch is None and self.measure_flops and is_compiled(pl_module):
            self.measure_flops = False

    @guarded
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        now = self.clock()
        if not self._open:
            self._new_step()
            self._open = True
            if self._cuda:
                self._start_event = torch.cuda.Event(enable_timing=True)
                self._start_event.record()
        fetched = self._fetch.take()
        if self._t_last_end is not None:
            gap = now - self._t_last_end
            wait = min(fetched, gap)
            self._wait += wait
            self._between += gap - wait
        rows = self.batch_size_fn(batch) if self.batch_size_fn is not None else infer_batch_rows(batch)
        self._samples += int(rows or 0)
        self._batches += 1
        if self.items_fn is not None:
            self._step_items = self._step_items + to_host_number(self.items_fn(batch))
        if self.flops_per_batch is None and self.measure_flops:
            self.measure_flops = False  # once per run, even if the count fails
            self._skip = True  # the counting mode slows this step down
            self._flops.start()
            self._counting_flops = self._flops.running
        self._t_batch = self.clock()  # our own work above is not the model's

    def idle_hooks(self) -> frozenset[str]:
        # The time before backward is compared across ranks alone (a straggler's busy time).
        return frozenset({"on_before_backward"}) if self._world == 1 else frozenset()

    def own_work_done(self) -> None:
        """Curvecast's own work after the last batch (other sensors, detectors, actuators) is done: the wait for the
        next batch starts now, so that work is not counted as data loading."""
        if self._t_last_end is not None:
            self._t_last_end = self.clock()

    @guarded
    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        self._forward += self.clock() - self._t_batch

    @guarded
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._stepped:
            return  # a second optimizer in the same batch: its time counts as optimizer time
        now = self.clock()
        self._compute += now - self._t_batch
        self._t_opt = now
        self._stepped = True

    @guarded
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = self.clock()
        if self._counting_flops:
            self._counting_flops = False
            flops = self._flops.stop()
            self.flops_per_batch = float(flops) if flops else None
        if not self._stepped:
            self._compute += now - self._t_batch
            self._t_last_end = self.clock()
            return
        step = self._steps.index(after_step=True)
        self._fit_steps += 1
        if not self._skip and self._fit_steps > _WARMUP_STEPS:
            # Kept raw, one tuple a step: the window, the totals and the history take them at the logging cadence
            # (each tensor or Python op in a hook runs cold after the backward pass, a few us apiece on a CPU).
            self._pending.append((step, StepTiming(self._wait, self._compute, now - self._t_opt, self._samples,
                                                   self._forward, self._between), self._step_items, self._batches))
        if self._cuda and self._start_event is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((self._start_event, end))
            self._poll_events()
        self._open = False  # the next batch starts a new step (its start resets the counters, once)
        if (step + 1) % self._every == 0 or (self._max_steps > 0 and step + 1 >= self._max_steps):
            self.flush(trainer, pl_module, step)
        self._t_last_end = self.clock()  # logging above is ours, not the data loader's

    def _poll_events(self) -> None:
        """Move completed CUDA event pairs into the window; ``query`` never blocks."""
        while self._events and self._events[0][1].query():
            start, end = self._events.popleft()
            self._device_times.append(start.elapsed_time(end) / 1000.0)
        while len(self._events) > 4 * (self._device_times.maxlen or 100):
            self._events.popleft()  # the device is far behind: drop rather than grow

    @guarded
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._t_last_end is not None:
            self._t_last_end = self.clock()  # validation time is not data wait

    def _items_per_sec(self) -> float:
        tensors = [i for i, v in enumerate(self._items) if isinstance(v, torch.Tensor)]
        if tensors:
            values = torch.stack([self._items[i] for i in tensors]).tolist()  # one transfer per cadence
            for i, v in zip(tensors, values, strict=True):
                self._items[i] = v
        seconds = self.timings.seconds()
        return sum(self._items) / seconds if seconds > 0 else math.nan

    def flush(self, trainer: Any, pl_module: Any | None = None, step: int | None = None) -> None:
        """Record pending per-step times and the window statistics; log them when ``pl_module`` is given.

        Under DDP every rank must call it at the same step (one all-gather of the per-rank medians).
        """
        self._record_pending()
        w = self.timings
        metrics = w.summary()
        seconds = metrics.pop("seconds")
        if not self._fetch.measured:  # the loop fetched its batches in a way the timer does not see: no evidence
            metrics["data_wait"] = metrics["data_wait_fraction"] = math.nan
        if self.items_fn is not None:
            metrics["items_per_sec"] = self._items_per_sec()
        if self.flops_per_batch and len(w):
            metrics["flops_per_sec"] = self.flops_per_batch * self._batches_per_step * len(w) / seconds
            if self._peak:
                metrics["mfu"] = metrics["flops_per_sec"] / self._peak
        if self._cuda:
            self._poll_events()
            metrics["device_step_time"] = percentile(list(self._device_times), 50)
        if self._world > 1:
            metrics.update(self._across_ranks(trainer, metrics))
        self.metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        step = step if step is not None else (self.history.last(STEP_TIME) or (None,))[0]
        if step is None:
            return
        for name in ("samples_per_sec", "items_per_sec", "flops_per_sec", "mfu", "data_wait_fraction",
                     "step_time_p90", "straggler_ratio"):
            if name in self.metrics:
                self.history.append(throughput(name), step, self.metrics[name])
        if pl_module is not None and self.log_metrics:
            for name, value in self.metrics.items():
                pl_module.log(logged_name(throughput(name)), value, on_step=True, on_epoch=False, batch_size=1)

    def _across_ranks(self, trainer: Any, local: dict[str, float]) -> dict[str, float]:
        device = getattr(trainer.strategy, "root_device", torch.device("cpu"))
        busy = self.timings.median("busy")
        mine = torch.tensor([local["step_time"], local["data_wait"], local["samples_per_sec"], busy], device=device)
        gathered = trainer.strategy.all_gather(mine).reshape(-1, 4).tolist()
        self.rank_metrics = gathered
        # step times equalise under DDP (fast ranks wait in the all-reduce): compare the work before backward
        flagged, slowest, ratio = straggler([row[3] for row in gathered], self.straggler_ratio)
        return {
            "samples_per_sec": sum(row[2] for row in gathered),  # all ranks together
            "samples_per_sec_per_rank": local["samples_per_sec"],
            "rank_step_time_max": max(row[0] for row in gathered),
            "rank_busy_time_max": max(row[3] for row in gathered),
            "rank_busy_time_median": percentile([row[3] for row in gathered], 50),
            "rank_data_wait_max": max(row[1] for row in gathered),
            "straggler_ratio": ratio,
            "straggler": float(flagged),
            "slowest_rank": float(slowest),
        }

    @guarded
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._flops.running:
            self._flops.stop()
        self._record_pending()

    def _record_pending(self) -> None:
        """Move the steps timed since the last call into the window and the totals, and record them."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        steps, timings, items, batches = zip(*pending, strict=True)
        totals = [timing.total for timing in timings]
        self.timings.extend(timings)
        self._items.extend(items)
        self.totals["steps"] += len(timings)
        self.totals["samples"] += sum(timing.samples for timing in timings)
        self.totals["seconds"] += sum(totals)
        self._batches_per_step = batches[-1]
        append = self.history.append
        for step, total in zip(steps, totals, strict=True):
            append(STEP_TIME, step, total)
        if self._fetch.measured:
            for step, timing in zip(steps, timings, strict=True):
                append(DATA_WAIT, step, timing.data_wait)

    def flush_pending(self) -> None:
        """Record the steps timed since the last flush (the bundle asks before a checkpoint is saved)."""
        self._record_pending()

    @guarded
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._flops.running:
            self._flops.stop()
        self._fetch.detach()

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """A failed run gets no teardown hook: the loop's fetch methods are given back here."""
        self.teardown(trainer, pl_module, "fit")

    def state_dict(self) -> dict[str, Any]:
        """Plain Python types only: counters and the FLOPs count (timings of a past process mean little)."""
        self._record_pending()  # the totals count every step timed so far
        state: dict[str, Any] = {"version": _STATE_VERSION, "totals": dict(self.totals),
                                 "flops_per_batch": self.flops_per_batch}
        return self._save_history(state)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a damaged one raises ``TypeError`` or ``ValueError`` naming
        the field, and changes nothing (every field is read before any is assigned)."""
        state = checked_mapping("the Throughput state", state_dict)
        version = state.get("version")
        if isinstance(version, bool) or version != _STATE_VERSION:
            raise ValueError(f"Expected a Throughput state of version {_STATE_VERSION}, but got {version!r}")
        saved = checked_mapping("`Throughput.totals`", state.get("totals", {}))
        totals = {
            "steps": checked_whole("`Throughput.totals['steps']`", saved.get("steps", 0), low=0),
            "samples": checked_whole("`Throughput.totals['samples']`", saved.get("samples", 0), low=0),
            "seconds": checked_real("`Throughput.totals['seconds']`", saved.get("seconds", 0.0), low=0.0),
        }
        flops = state.get("flops_per_batch")
        if flops is not None:
            flops = checked_real("`Throughput.flops_per_batch`", flops, low=0.0)
        self._load_history(state)  # all or nothing: the last that can fail
        self.totals = totals
        if self.flops_per_batch is None and flops is not None:
            self.flops_per_batch = flops
            self.measure_flops = False
