"""HyperparameterAdvisor: turn what the run measured into hyperparameter advice, each piece once, as alerts.

Advice (kind ``advice/<topic>``), each published at most once per run through
:func:`~curvecast.integrations.alerts.publish_alert` (Python logging and TensorBoard's ``curvecast/alerts``):

- ``batch_size``: the batch is ``batch_ratio`` times below or above the measured noise scale B_simple on
  ``persistence`` consecutive readings, with the steps/data trade-off S = S_min(1 + B_crit/B), E = E_min(1 + B/B_crit).
- ``lr_too_high``: repeated loss spikes, or a divergence, with a suggested lower peak LR.
- ``warmup``: spikes early in the run (in the first ``early_fraction`` of the steps).
- ``data_loader``: the run waits on data more than ``data_wait_threshold`` of the time.
- ``plateau``: the loss plateaued and the LR schedule has no decay ahead.
- ``step_law``: for LLM pretraining, when ``tokens_per_step`` is given: the peak LR and batch against the Step Law.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import curvecast.integrations.advice_math as am
from curvecast._lightning import several_players
from curvecast.forecasting.anomalies.objective_change import is_objective_change
from curvecast.forecasting.report import Report
from curvecast.integrations.actuator import Actuator
from curvecast.integrations.alerts import Alert, publish_alert
from curvecast.metric_direction import first_return
from curvecast.series import DATA_WAIT, DATA_WAIT_FRACTION, GNS_B_SIMPLE, LR

__all__ = ["HyperparameterAdvisor"]

# A DataLoader worker hands each batch over through a queue, at 0.1-1 ms a batch: a fetch shorter than this per step
# (the collation of an in-memory TensorDataset: 0.2-0.3 ms for 64 rows) is no worker's to save, whatever its share of
# a fast step.
MIN_DATA_WAIT_S = 0.002
WAIT_WINDOW = 50  # the recent steps whose median fetch time is compared with it
# The plateau advice says the schedule has "no decay ahead": any planned fall to this fraction of the LR now or below
# is one. The report's `lr_drop_ahead` counts falls to half only (a plateau may still break), so an LSTM with a
# per-epoch StepLR(gamma=0.7) was told at its plateau that no decay lay ahead, its 0.7x drop still to come.
DECAY_AHEAD = 0.8


class HyperparameterAdvisor(Actuator):
    """Actuator: hyperparameter advice from the report's anomalies and the measured noise scale and throughput.

    The measures (the LR, ``gns/b_simple``, the data wait) are read from each report's ``series``.

    Args:
        batch_size: samples per optimizer step over all devices, in the unit the loss averages over (as B_simple);
            None: the train loader's ``batch_size`` x accumulation x world size.
        tokens_per_step: tokens per optimizer step, for the Step Law (LLM pretraining only).
        planned_tokens: the tokens the run will train on (D); None: ``tokens_per_step`` x the run's steps.
        n_params: non-embedding parameters (N); None: counted from the module.
        batch_ratio: how far (as a factor) the batch must sit from B_simple before advice is given.
        persistence: consecutive B_simple (or data-wait) readings that must agree; B_simple grows during training.
        early_fraction: the start of the run, as a fraction of its steps, where spikes point at the warmup.
        data_wait_threshold: fraction of step time spent waiting on data that makes the run data-loader bound.
        b_simple_series, data_wait_series: history series of the noise scale and of the data-wait fraction.
        tensorboard: also write the advice to TensorBoard.

    Attributes:
        advice: the alerts published so far.
    """

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        tokens_per_step: int | None = None,
        planned_tokens: float | None = None,
        n_params: int | None = None,
        batch_ratio: float = 10.0,
        persistence: int = 3,
        early_fraction: float = 0.1,
        data_wait_threshold: float = 0.2,
        b_simple_series: str = GNS_B_SIMPLE,
        data_wait_series: str = DATA_WAIT_FRACTION,
        tensorboard: bool = True,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("tokens_per_step", tokens_per_step), ("n_params", n_params)):
            if value is not None and value < 1:
                raise ValueError(f"Expected `{name}` to be a positive int or None, but got {value}")
        if planned_tokens is not None and not planned_tokens > 0:
            raise ValueError(f"Expected `planned_tokens` to be positive or None, but got {planned_tokens}")
        if not batch_ratio > 1.0:
            raise ValueError(f"Expected `batch_ratio` to be greater than 1, but got {batch_ratio}")
        if persistence < 1:
            raise ValueError(f"Expected `persistence` to be a positive int, but got {persistence}")
        for name, value in (("early_fraction", early_fraction), ("data_wait_threshold", data_wait_threshold)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"Expected `{name}` to lie in (0, 1), but got {value}")
        self.batch_size = batch_size
        self.tokens_per_step = tokens_per_step
        self.planned_tokens = planned_tokens
        self.n_params = n_params
        self.batch_ratio = batch_ratio
        self.persistence = persistence
        self.early_fraction = early_fraction
        self.data_wait_threshold = data_wait_threshold
        self.b_simple_series = b_simple_series
        self.data_wait_series = data_wait_series
        self.tensorboard = tensorboard
        self.advice: list[Alert] = []
        self._given: set[str] = set()
        self._spike_steps: list[int] = []

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        # A spike that recovered at once is a note (info), nothing a warmup is needed against: the warnings count.
        self._spike_steps += [a.step for a in report.anomalies
                              if a.kind == "spike" and a.series == report.monitor and a.severity != "info"]  # fmt: skip
        del self._spike_steps[:-100]  # bounded: only counts and the first few steps are ever shown
        checks = (
            self._batch_size_advice,
            self._lr_too_high_advice,
            self._warmup_advice,
            self._data_loader_advice,
            self._plateau_advice,
            self._step_law_advice,
        )
        for check in checks:
            topic = check.__name__.strip("_").removesuffix("_advice")
            if topic in self._given:
                continue
            found = check(trainer, pl_module, report)
            if found is not None:
                severity, message = found
                self._given.add(topic)
                alert = Alert(f"advice/{topic}", int(report.step), severity, message, source="advice")
                self.advice.append(alert)
                publish_alert(trainer, alert, tensorboard=self.tensorboard)

    # -- checks: each returns (severity, message) or None -------------------------------------------------------

    def _batch_size_advice(self, trainer: Any, pl_module: Any, report: Report) -> tuple[str, str] | None:
        recent = self._recent(report, self.b_simple_series)
        batch = self.batch_size or _global_batch(trainer)
        if recent is None or batch is None or not np.all(recent > 0):
            return None
        b_simple = float(recent[-1])
        caveat = (
            " B_simple estimates the critical batch B_crit only to an order of magnitude; it grows as the loss falls "
            "and reads low at an LR set too high."
        )
        if np.all(recent > self.batch_ratio * batch):
            examples = _examples_per_epoch(trainer)
            if examples is not None and b_simple >= examples:
                # No batch of this data set reaches it, and on so few examples the estimate says little: a healthy
                # classifier of 1024 examples read 1.4e3 one seed, 330 and 1e5 on others.
                return None
            steps = am.steps_factor(batch, b_simple)
            return "info", (
                f"The batch ({batch}) is {b_simple / batch:.0f}x below the measured gradient noise scale B_simple ~ "
                f"{b_simple:.3g}. By S = S_min(1 + B_crit/B) the run needs about {steps:.1f}x the fewest steps that "
                f"could reach its loss; a batch near {b_simple:.3g} (with the LR scaled up to match) would need about "
                f"2x, i.e. {steps / 2:.1f}x fewer steps, for more data per step." + caveat
            )
        if np.all(recent * self.batch_ratio < batch):
            data = am.data_factor(batch, b_simple)
            return "info", (
                f"The batch ({batch}) is {batch / b_simple:.0f}x above the measured gradient noise scale B_simple ~ "
                f"{b_simple:.3g}. By E = E_min(1 + B/B_crit) the run uses about {data:.1f}x the fewest examples (and "
                f"compute) that could reach its loss; a batch near {b_simple:.3g} would need about 2x, at the cost of "
                "more, smaller steps." + caveat
            )
        return None

    def _lr_too_high_advice(self, trainer: Any, pl_module: Any, report: Report) -> tuple[str, str] | None:
        peak = _peak_lr(report)
        lr_text = f" (peak LR {peak:.3g})" if peak else ""
        # Only a confirmed divergence (critical) is evidence enough: spikes and early warnings come from healthy runs
        # too (noisy small batches, the early transient), and advice to cut the LR there costs the user a good run.
        diverged = [
            a for a in report.anomalies
            if a.kind == "divergence" and a.severity == "critical" and a.series == report.monitor
        ]  # fmt: skip
        if not diverged:
            return None
        suggestion = f", e.g. {peak / 3:.3g}" if peak else ""
        return "warning", (
            f"{report.monitor} diverged (step {diverged[0].step}): the LR{lr_text} is likely too high. Resume from "
            f"a checkpoint before the climb with the peak LR cut to about a third{suggestion}, a longer warmup, "
            "or gradient clipping (`gradient_clip_val=1.0`)."
        )

    def _warmup_advice(self, trainer: Any, pl_module: Any, report: Report) -> tuple[str, str] | None:
        if report.horizon is None:
            return None
        early = [s for s in self._spike_steps if s < self.early_fraction * report.horizon]
        if not early:
            return None
        warmup = _warmup_steps(report)
        now = f"the warmup of {warmup} steps may be too short" if warmup else "the run has no LR warmup"
        suggested = max(2 * max(early), int(0.05 * report.horizon), 1)
        return "warning", (
            f"{report.monitor} spiked early in the run (steps {', '.join(str(s) for s in early[:5])}): {now}. Try a "
            f"linear warmup of about {suggested} steps (a few percent of the run, past the last early spike)."
        )

    def _data_loader_advice(self, trainer: Any, pl_module: Any, report: Report) -> tuple[str, str] | None:
        recent = self._recent(report, self.data_wait_series)
        if recent is None or not np.all(recent > self.data_wait_threshold):
            return None
        waits = report.series.get(DATA_WAIT)
        if waits is not None and len(waits.values) and np.median(waits.values[-WAIT_WINDOW:]) < MIN_DATA_WAIT_S:
            return None  # a fetch this short is collation in the main process: no worker can take it off the step
        share = f"The run spends {float(np.median(recent)):.0%} of its time waiting for data (as of step {report.step})"
        rl_return = first_return(getattr(trainer, "callback_metrics", None) or {})
        if rl_return is not None:
            # An on-policy agent's loader steps its environment with the current policy: workers would roll out stale
            # copies of it, and pinned memory saves nothing on a few floats.
            return "info", (
                f"{share}. The run logs `{rl_return}`, a return: where its DataLoader steps the environment (an "
                "on-policy agent's experience source), that wait is the environment's, and more workers would collect "
                "with stale copies of the policy. Vectorised environments or a cheaper simulator step shorten it."
            )
        return "warning", (
            f"{share}: it is data-loader bound. Try more DataLoader workers (`num_workers`), `pin_memory=True`, "
            "`persistent_workers=True`, a larger `prefetch_factor`, or pre-processing and caching the data."
        )

    def _plateau_advice(self, trainer: Any, pl_module: Any, report: Report) -> tuple[str, str] | None:
        # Nor a plateau over which a logged weight of the objective moved (a KL warm-up): the objective changed.
        plateau = [
            a
            for a in report.anomalies
            if a.kind == "plateau" and a.series == report.monitor and not is_objective_change(a)
        ]
        # Without a known schedule nobody can say no decay lies ahead (a ReduceLROnPlateau is about to decay it).
        if not plateau or report.lr_drop_ahead or not report.lr_schedule_known:
            return None
        if report.schedule is not None and report.schedule.drop_ahead(report.step, DECAY_AHEAD):
            return None  # a smaller decay is planned: the advice's "no decay ahead" would be false
        # Nor a player's loss of several (a GAN's discriminator at log 2 is where it belongs, not stuck).
        if trainer is not None and several_players(trainer, pl_module):
            return None
        # A monitor flat since its first point has not learned at all: no decay helps it (the plateau's own alert says
        # what to try: a higher LR, the data). Its score is the plateau's span: it began at the step less the span.
        watched = report.series.get(report.monitor)
        if watched is not None and len(watched.steps) and plateau[0].step - plateau[0].score <= watched.steps[0]:
            return None
        # Nor one that never came down past its noise: the plateau's reference was then a lucky dip (an RL surrogate
        # loss scatters about zero from its first step to its last), and "a few percent more" has nothing to go on.
        if watched is not None and not am.improved_past_noise(watched.values, report.mode):
            return None
        return "info", (
            f"{report.monitor} has plateaued (step {plateau[0].step}) and the LR schedule has no decay ahead. Decaying "
            "the LR now (a linear or cosine cooldown over the last 10-20% of steps, or ReduceLROnPlateau) usually "
            "brings the loss down a few percent more; if the forecast already meets your target, stop here."
        )

    def _step_law_advice(self, trainer: Any, pl_module: Any, report: Report) -> tuple[str, str] | None:
        if self.tokens_per_step is None:
            return None
        tokens = self.planned_tokens or (self.tokens_per_step * report.horizon if report.horizon else None)
        n_params = self.n_params or (am.non_embedding_params(pl_module) if pl_module is not None else None)
        peak = _peak_lr(report)
        if not tokens or not n_params or not peak:
            return None
        eta = am.step_law_lr(n_params, tokens)
        batch = am.step_law_batch_tokens(tokens)
        lr_ratio, batch_ratio = peak / eta, self.tokens_per_step / batch
        off = max(lr_ratio, 1 / lr_ratio, batch_ratio, 1 / batch_ratio) > 2.0
        return ("warning" if off else "info"), (
            f"Step Law (Li et al. 2025, 'Predictable Scale'; fitted on LLM pretraining with AdamW, so advice for LLM "
            f"pretraining only): for N = {n_params:.3g} non-embedding parameters and D = {tokens:.3g} planned tokens, "
            f"the optimal peak LR is about {eta:.3g} and the optimal batch about {batch:.3g} tokens. This run: peak LR "
            f"{peak:.3g} ({lr_ratio:.2f}x the optimum), batch {self.tokens_per_step:.3g} tokens ({batch_ratio:.2f}x)."
        )

    # -- readings -------------------------------------------------------------------------------------------------

    def _recent(self, report: Report, name: str) -> np.ndarray | None:
        """The last ``persistence`` finite values of a recorded series, or None when there are fewer."""
        series = report.series.get(name)
        if series is None:
            return None
        values = series.values[np.isfinite(series.values)][-self.persistence :]
        return values if len(values) >= self.persistence else None


def _peak_lr(report: Report) -> float | None:
    """The peak LR of the run: of the planned schedule when known, else the highest recorded so far."""
    candidates = [lr for lr in (report.peak_lr, report.schedule.peak_lr if report.schedule else None) if lr]
    peak = max(candidates, default=math.nan)
    return peak if math.isfinite(peak) and peak > 0 else None


def _warmup_steps(report: Report) -> int | None:
    """Steps until the recorded LR first reached its peak, or None when it never rose."""
    series = report.series.get(LR)
    if series is None or len(series) < 2 or not series.values[0] < 0.99 * np.nanmax(series.values):
        return None
    return int(series.steps[int(np.nanargmax(series.values))])


def _examples_per_epoch(trainer: Any) -> int | None:
    """Training examples an epoch holds over all devices (``num_training_batches`` of the train loader's
    ``batch_size``); None if unknown or endless."""
    try:
        batches, rows = trainer.num_training_batches, trainer.train_dataloader.batch_size
    except AttributeError:
        return None
    if not isinstance(rows, int) or rows < 1 or not isinstance(batches, (int, float)) or not 1 <= batches < math.inf:
        return None
    return int(batches) * rows * int(getattr(trainer, "world_size", 1))


def _global_batch(trainer: Any) -> int | None:
    """Samples per optimizer step over all devices, from the train loader's ``batch_size``; None if unknown."""
    try:
        rows = trainer.train_dataloader.batch_size
    except AttributeError:
        return None
    if not isinstance(rows, int) or rows < 1:
        return None
    return rows * int(getattr(trainer, "accumulate_grad_batches", 1)) * int(getattr(trainer, "world_size", 1))
