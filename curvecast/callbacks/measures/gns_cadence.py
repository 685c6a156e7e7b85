"""SampleCadence: which optimizer steps the gradient noise scale measures, its cost kept to a share of the run's time.

A sampled step costs the training thread the per-example (or per-micro-batch) norms in the backward pass, the hooks
that take them, and a pass over every gradient for the big batch's norm: 0.5-0.8 ms of CPU for the 25k- to
300k-parameter MLPs of ``benchmarks/small_step_overhead.py``, whose steps take 2-6 ms. The default spacing (one step
in ten) makes that 2-3 % of such a run; on a 50 ms step, a fraction of a percent. On a CPU, where the training
thread's clock sees the whole cost, the spacing after the first ``warmup`` samples follows the measured cost: the
smallest spacing whose samples take at most ``share`` of the run's time (the wall time between two samples, which
includes everything the run does between them).
"""

from __future__ import annotations

import time

__all__ = ["NORM_SHARE", "NormCadence", "SAMPLE_SHARE", "SampleCadence", "cost_clock"]

# A sample's cost is read on the training thread's CPU clock: a wait for the GIL (the scoring and forecast threads
# hold it at times) or for a core is none of its cost. A system call, about 1 us: read a few times per sample only.
cost_clock = time.thread_time

SAMPLE_SHARE = 0.003  # of the run's time, for the noise scale's samples (their gradient norm pass included)
MAX_SPACING = 1024  # optimizer steps between samples at most: the estimate keeps moving on the slowest spacing
# The gradient norm's pass over every gradient on a CPU: 10-20 us for a 25k-parameter MLP, 150-250 us for a 640k one
# run cold after the backward pass (8 steps apart, 2-3 % of the steps' 8 ms). Kept to this share of the run's time,
# it is measured every 8 steps on small models and every 32-64 on such a one; the detectors score the losses of the
# steps without a norm alone, with their batch.
NORM_SHARE = 0.001
MAX_NORM_SPACING = 128  # optimizer steps between gradient norms at most: the series keeps a point a few hundred steps


class SampleCadence:
    """The steps to sample: every ``every`` steps from step 0 while fixed or warming up; then, when ``adaptive``,
    every ``every`` steps with the spacing picked from the samples' measured cost.

    A picked spacing is ``default`` when that fits the share, else ``aligned`` times a power of two, and its samples
    fall on the steps whose index + 1 is a multiple of it: with ``aligned`` the gradient norm's cadence, each sample is
    a step whose gradient norm is measured anyway (one pass over the gradients serves both).

    Args:
        default: the spacing of the warm-up (and of every sample when not adaptive).
        aligned: the gradient norm's cadence, which a stretched spacing is a multiple of.
        adaptive: pick the spacing from the cost (False: ``default`` throughout).
        warmup: samples taken at ``default`` before the spacing follows the cost (the estimate is reported after
            this many updates, at the step it always was).
        share: the largest share of the run's time the samples may take.
    """

    def __init__(self, default: int, aligned: int, adaptive: bool, warmup: int, share: float = SAMPLE_SHARE) -> None:
        self.default = default
        self.aligned = max(aligned, 1)
        self.adaptive = adaptive
        self.warmup = warmup
        self.share = share
        self.every = default
        self._offset = 0  # a step is sampled when (step + offset) % every == 0
        self.samples = 0
        self.cost: float | None = None  # seconds a sample costs the training thread (a running average)
        self._last: tuple[int, float, float] | None = None  # the previous sample: step, start time, cost

    def due(self, step: int) -> bool:
        """Whether ``step`` (an optimizer step index) is one to sample."""
        return (step + self._offset) % self.every == 0

    def sampled(self, step: int, started: float, cost: float) -> None:
        """A sample of ``step``, begun at ``started`` (host seconds), took ``cost`` seconds of the training thread:
        pick the spacing of the next ones."""
        self.samples += 1
        previous, self._last = self._last, (step, started, cost)
        if not self.adaptive:
            return
        # The first sample of a fit pays for first calls (hooks attached, buffers allocated): left out of the average.
        if previous is None:
            return
        self.cost = _running_mean(self.cost, cost)
        if self.samples <= self.warmup or step <= previous[0]:
            return
        # Seconds of one step without a sample: the wall time since the previous sample, less that sample's cost.
        period = max(started - previous[1] - previous[2], 0.0) / (step - previous[0])
        if period <= 0.0:
            return
        if self.cost <= self.share * self.default * period:
            self.every, self._offset = self.default, 0
            return
        self.every = _spacing(self.aligned, self.cost, period, self.share, MAX_SPACING, least=self.default)
        self._offset = 1


class NormCadence:
    """The steps whose gradient norm is measured: those whose index + 1 is a multiple of ``every``, ``base`` (the
    losses' moves to the host, so that a norm reaches the detectors with its step's loss) or, when ``adaptive``,
    ``base`` times the least power of two that keeps the measured passes at most ``share`` of the run's time.

    Args:
        base: the spacing while the passes are cheap enough (and the unit of a stretched one).
        adaptive: pick the spacing from the passes' cost (False: ``base`` throughout).
        share: the largest share of the run's time the passes may take.
    """

    def __init__(self, base: int, adaptive: bool, share: float = NORM_SHARE) -> None:
        self.base = self.every = max(base, 1)
        self.adaptive = adaptive
        self.share = share
        self.cost: float | None = None  # seconds a pass costs the training thread (a running average)
        self._last: tuple[int, float] | None = None  # the previous pass: step, start time

    def due(self, step: int) -> bool:
        """Whether the gradient norm of ``step`` (an optimizer step index) is to be measured."""
        return (step + 1) % self.every == 0

    def measured(self, step: int, started: float, cost: float) -> None:
        """A pass for ``step`` began at ``started`` (host seconds) and took ``cost`` seconds of the training thread:
        pick the spacing of the next ones."""
        previous, self._last = self._last, (step, started)
        # The first pass of a fit pays for first calls: it only marks the time.
        if not self.adaptive or previous is None or step <= previous[0]:
            return
        self.cost = _running_mean(self.cost, cost)
        period = (started - previous[1]) / (step - previous[0])  # wall seconds of a step, the pass included
        if period > 0.0:
            self.every = _spacing(self.base, self.cost, period, self.share, MAX_NORM_SPACING)


def _running_mean(mean: float | None, value: float) -> float:
    """An exponential running mean that follows a cost within a few readings."""
    return value if mean is None else 0.7 * mean + 0.3 * value


def _spacing(unit: int, cost: float, period: float, share: float, most: int, least: int = 1) -> int:
    """The least of ``unit`` times a power of two, at least ``least``, at which ``cost`` seconds once per so many
    steps of ``period`` seconds is at most ``share`` of the time; ``most`` where that is not reached before it."""
    every = unit
    while every < least or (cost > share * every * period and every * 2 <= most):
        every *= 2
    return every
