"""AnomalyDetector: streaming detection of spikes, divergence, non-finite values, plateaus and slowdowns."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from curvecast.forecasting import anomaly_messages as msg
from curvecast.forecasting.anomaly_divergence import DivergenceChecks
from curvecast.forecasting.anomaly_event import Anomaly
from curvecast.forecasting.anomaly_stats import check_step, check_value, median, push, sigma_of_diffs
from curvecast.forecasting.anomaly_trends import TrendChecks
from curvecast.forecasting.schedule import LRSchedule

__all__ = ["DEFAULT_KINDS", "AnomalyDetector"]

DEFAULT_KINDS = {"min": ("nonfinite", "spike", "divergence", "plateau"), "max": ("nonfinite", "slowdown")}
_DETECTABLE = ("nonfinite", "spike", "divergence", "plateau", "slowdown")
_RECENT = 32  # points kept for levels: the drift baseline (32), the slowdown level (30), projections (7)
_SLOPE_DIFFS = 16  # accepted first differences behind the local slope
_SHORT_DIFFS = 32  # accepted first differences behind the recent noise
_PROJECT = 7  # recent points projected to the next step; their median is the spike baseline
_STATE_KEYS = (
    "n", "n_accepted", "last_step", "first_step", "log_scale", "y0", "recent", "diffs", "last_accepted",
    "in_spike", "run_z", "mute_until", "best", "cusum", "cusum_zero_step", "cusum_zero_level", "drift_armed",
    "elev_run", "elev_since", "critical_armed", "jump_armed", "anchor_level", "anchor_step", "anchor_n",
    "plateau_armed", "baseline", "baseline_buf", "slow_armed", "in_nonfinite", "last_z", "sigma", "sigma_short",
    "pending",
)  # fmt: skip
# Keys absent from states saved by older versions: loaded when present.
_NEW_KEYS = (
    "rise_best",
    "rise_best_step",
    "rise_count",
    "rise_run",
    "rise_armed",
    "rise_levels",
    "rise_zs",
    "rise_peak",
)


class AnomalyDetector(DivergenceChecks, TrendChecks):
    """Watches one metric series, one value per step, and reports stability events as they happen.

    Each value is scored on the log scale (noise of a loss is roughly multiplicative) against a
    robust local baseline: the median of the last 7 points projected forward by the median of the
    last 16 first differences, with the noise taken as 1.4826 MAD of up to ``window_points``
    first differences (points flagged as spikes stay out of it). All work per update is on windows
    of fixed size, so an update is O(1) and memory is bounded for any run length.

    - ``nonfinite`` (critical): NaN or inf, at its own step; reported once per run of such values.
    - ``spike``: robust z above ``spike_z`` and at least ``spike_min_rise`` above the baseline,
      reported at once; or z above ``spike_recover_z``, as far above the point before it, and confirmed
      by its recovery: the next value falls back by 4 noise units to within 2 of the baseline (reported
      one step late, with the jump's own step; a level shift never recovers, so it is no spike). The
      noise is the larger of that of the last 128 and the last 32 differences, so a noisier stretch
      raises it at once. More than ``persist_points`` consecutive flags are taken as a level shift.
      ``warning`` when the value is at least ``spike_warn_ratio`` times the baseline, else ``info``.
    - ``divergence``: ``warning`` from a one-sided CUSUM (k 0.5, clipped at z 3, threshold
      ``drift_h``) against the median of the last 32 points, which lags a climb but not the noise;
      from a sustained rise of the median of 7 points above its recent best, by a margin scaled
      to the level's own noise and the run's past wander (see :class:`DivergenceChecks`);
      or when a value jumps to ``divergence_ratio`` times the best level before the noise is known;
      ``critical`` once ``confirm_points`` consecutive values spanning at least ``confirm_steps``
      steps stay at ``divergence_ratio`` times the best level (the running minimum of the median
      of 3 points).
    - ``plateau`` (info): the median of 9 points has not improved by ``plateau_rtol`` over the last
      ``plateau_fraction`` of the steps seen and at least ``plateau_points`` points; muted when
      the known LR schedule still drops by half ahead or is already below 30% of its peak.
    - ``slowdown`` (warning, for throughput with ``mode="max"``): the median of the last 30 points
      falls below ``slowdown_ratio`` times the median of the 50 points after warmup.

    Spike and divergence alarms are muted for the first ``warmup_points`` points and, when the LR
    schedule is known, while the LR rises (warmup, warm restarts) and 8 points after; a rise also
    resets the best level, so a scheduled restart is neither a spike nor a divergence.

    Args:
        series: name of the series, carried by every event (e.g. ``"loss"``, ``"grad_norm"``).
        mode: ``"min"`` when higher values are worse (losses, gradient norms), ``"max"`` when lower
            values are worse (throughput, accuracy).
        kinds: which kinds to report; default ``DEFAULT_KINDS[mode]``.
        lrs: the planned LR at every step ``0..N``, when known (see :meth:`set_schedule`).
        log_scale: score log values (switches to the raw scale for good if a value <= 0 arrives).

    Example:
        >>> det = AnomalyDetector()
        >>> curve = [2.0 + 8.0 / (1 + t / 20) + 0.01 * (t % 3) + (3.0 if t == 200 else 0.0) for t in range(300)]
        >>> events = [e for t, v in enumerate(curve) for e in det.update(t, v)]
        >>> [(e.kind, e.step, e.severity) for e in events]
        [('spike', 200, 'warning')]
    """

    def __init__(
        self,
        series: str = "loss",
        *,
        mode: str = "min",
        kinds: Collection[str] | None = None,
        lrs: Sequence[float] | LRSchedule | None = None,
        log_scale: bool = True,
        spike_z: float = 7.0,
        spike_recover_z: float = 5.5,
        spike_min_rise: float = 0.02,
        spike_warn_ratio: float = 1.25,
        persist_points: int = 3,
        drift_h: float = 12.0,
        drift_min_rise: float = 0.1,
        divergence_ratio: float = 1.5,
        confirm_points: int = 3,
        confirm_steps: int = 50,
        plateau_rtol: float = 0.01,
        plateau_points: int = 50,
        plateau_fraction: float = 0.25,
        slowdown_ratio: float = 0.8,
        warmup_points: int = 20,
        window_points: int = 128,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(
                f"Expected `mode` to be 'min' (higher is worse) or 'max' (lower is worse), but got {mode!r}"
            )
        kinds = DEFAULT_KINDS[mode] if kinds is None else tuple(kinds)
        unknown = [k for k in kinds if k not in _DETECTABLE]
        if unknown:
            raise ValueError(f"Expected `kinds` to be among {_DETECTABLE}, but got {unknown}")
        for name, v, lo in (("spike_z", spike_z, 0), ("drift_h", drift_h, 0), ("spike_min_rise", spike_min_rise, 0)):
            if not v > lo:
                raise ValueError(f"`{name}` must be > {lo}, but got {v}")
        if not divergence_ratio > 1.0 or not spike_warn_ratio > 1.0:
            raise ValueError(f"`divergence_ratio` and `spike_warn_ratio` must be > 1, but got {divergence_ratio}, "
                             f"{spike_warn_ratio}")  # fmt: skip
        if not 0.0 < slowdown_ratio < 1.0 or not 0.0 < plateau_fraction <= 1.0:
            raise ValueError(f"`slowdown_ratio` and `plateau_fraction` must be in (0, 1), but got {slowdown_ratio}, "
                             f"{plateau_fraction}")  # fmt: skip
        if min(persist_points, confirm_points, plateau_points, window_points) < 1 or warmup_points < 0:
            raise ValueError("point counts must be >= 1 (`warmup_points` >= 0)")
        self.series, self.mode, self.kinds = series, mode, frozenset(kinds)
        self.spike_z, self.spike_min_rise, self.spike_warn_ratio = spike_z, spike_min_rise, spike_warn_ratio
        self.spike_recover_z = spike_recover_z
        self.persist_points, self.drift_h, self.divergence_ratio = persist_points, drift_h, divergence_ratio
        self.drift_min_rise = drift_min_rise
        self.confirm_points, self.confirm_steps = confirm_points, confirm_steps
        self.plateau_rtol, self.plateau_points, self.plateau_fraction = plateau_rtol, plateau_points, plateau_fraction
        self.slowdown_ratio, self.warmup_points, self.window_points = slowdown_ratio, warmup_points, window_points
        self.schedule: LRSchedule | None = None
        if lrs is not None:
            self.set_schedule(lrs)
        self._sign = 1.0 if mode == "min" else -1.0
        self._reset(log_scale)

    def _reset(self, log_scale: bool) -> None:
        self.n, self.n_accepted, self.last_step, self.first_step = 0, 0, None, None
        self.log_scale, self.y0 = log_scale, None
        self.recent: list[float] = []
        self.diffs: list[float] = []
        self.last_accepted: float | None = None
        self.in_spike, self.run_z, self.mute_until = False, 0, 0
        self.pending: list[float] | None = None  # [step, value, y, z, expected] of a jump awaiting recovery
        self.best, self.cusum, self.cusum_zero_step, self.cusum_zero_level = math.inf, 0.0, None, None
        self.drift_armed, self.elev_run, self.elev_since, self.critical_armed, self.jump_armed = True, 0, 0, True, True
        self.anchor_level, self.anchor_step, self.anchor_n, self.plateau_armed = math.inf, None, 0, True
        self.baseline: float | None = None
        self.baseline_buf: list[float] = []
        self.slow_armed, self.in_nonfinite = True, False
        self.last_z, self.sigma, self.sigma_short = math.nan, math.nan, math.nan
        self._reset_rise()

    def set_schedule(self, lrs: Sequence[float] | LRSchedule | None) -> None:
        """Tell the detector the planned LR at every step ``0..N`` (None forgets it).

        With a schedule, LR rises (warmup, warm restarts) mute spike and divergence alarms, and a
        plateau is not reported while the LR still drops by half ahead or is below 30% of its peak.
        """
        self.schedule = None if lrs is None else lrs if isinstance(lrs, LRSchedule) else LRSchedule(lrs)

    # --- the public streaming interface ------------------------------------------------------
    def update(self, step: int, value: float) -> list[Anomaly]:
        """Feed the value of the series at ``step`` (increasing); return the events it triggers."""
        step = check_step(step, self.last_step)
        value = check_value(value)
        prev_step, self.last_step = self.last_step, step
        if self.first_step is None:
            self.first_step = step
        if not math.isfinite(value):
            was, self.in_nonfinite = self.in_nonfinite, True
            if was or "nonfinite" not in self.kinds:
                return []
            return [Anomaly("nonfinite", step, "critical", msg.nonfinite(self.series, step, value), self.series,
                            math.inf, value)]  # fmt: skip
        self.in_nonfinite = False
        if self.log_scale and value <= 0.0:
            self._reset(log_scale=False)  # logs are undefined: restart the statistics on the raw scale
            self.first_step, self.last_step = step, step
        y = self._sign * (math.log(value) if self.log_scale else value)
        if self.y0 is None:
            self.y0 = y
        self.n += 1
        if self.schedule is not None and prev_step is not None and self.schedule.rose_between(prev_step, step):
            # A scheduled LR rise: the loss may climb for a while; start the levels afresh (the noise
            # scale is kept: the LR changes the level more than the noise).
            self.mute_until, self.recent = self.n + 8, []
            self.best, self.cusum, self.drift_armed, self.elev_run = math.inf, 0.0, True, 0
            self.anchor_level, self.anchor_step, self.anchor_n = math.inf, None, 0
            self._reset_rise()
        muted = self.n <= self.warmup_points or self.n <= self.mute_until
        events: list[Anomaly] = []
        flagged = self._spikes(step, value, y, muted, events)
        push(self.recent, y, _RECENT)
        if not flagged or self.run_z >= self.persist_points:
            if self.last_accepted is not None:
                push(self.diffs, y - self.last_accepted, self.window_points)
            self.last_accepted = y
            self.n_accepted += 1
        self._divergence(step, value, y, muted, events)
        if "plateau" in self.kinds:
            self._plateau(step, muted, events)
        if "slowdown" in self.kinds:
            self._slowdown(step, events)
        return events

    # --- detectors ------------------------------------------------------------------------------
    def _scale(self, y: float) -> float:
        if not self.sigma >= 0.0 or self.n_accepted % 4 == 0:
            # The MAD of 128 differences is most of the cost of an update; the noise moves slowly.
            self.sigma = sigma_of_diffs(self.diffs)
            self.sigma_short = sigma_of_diffs(self.diffs[-_SHORT_DIFFS:])
        floor = 0.002 if self.log_scale else 0.002 * abs(y) + 1e-12  # quantised logs give MAD 0
        # The noise of a stretch can rise within a run (bursts): the larger of the long and the recent noise.
        return max(self.sigma, self.sigma_short, floor)

    def _rise(self, ratio: float, y: float) -> float:
        """How far above the baseline ``ratio`` times the baseline lies, on the scoring scale."""
        return math.log(ratio) if self.log_scale else (ratio - 1.0) * abs(y)

    def _value_of(self, y: float) -> float:
        y = self._sign * y
        return math.exp(y) if self.log_scale else y

    def _spikes(self, step: int, value: float, y: float, muted: bool, events: list[Anomaly]) -> bool:
        if len(self.diffs) < 8 or not self.recent:
            self.last_z = math.nan
            return False
        slope = median(self.diffs[-_SLOPE_DIFFS:])
        tail = self.recent[-_PROJECT:]
        expected = median([v + (len(tail) - i) * slope for i, v in enumerate(tail)])
        scale = self._scale(expected)
        z = (y - expected) / scale
        self.last_z = z
        big_enough = y - expected >= self._rise(1.0 + self.spike_min_rise, expected)
        flagged = z > self.spike_z and big_enough
        # Consecutive flags beyond `persist_points` are a level shift, not a spike: they enter the noise.
        self.run_z = self.run_z + 1 if flagged else 0
        if self.pending is not None:
            # A smaller jump counts once the next value falls back: a jump that recovers.
            p_step, p_value, p_y, p_z, p_expected = self.pending
            self.pending = None
            # Back within 2 noise units of the level it left, and the jump stood out from the point before.
            back = y - p_expected <= 2.0 * scale and p_y - y >= 4.0 * scale
            if back and len(self.recent) > 1 and p_y - self.recent[-2] >= self.spike_recover_z * scale and not muted:
                self._report_spike(int(p_step), p_value, p_y, p_z, p_expected, events)
        if flagged and not self.in_spike and not muted:
            self._report_spike(step, value, y, z, expected, events)
        elif not flagged and z > self.spike_recover_z and big_enough and not self.in_spike:
            self.pending = [float(step), value, y, z, expected]
        self.in_spike = flagged
        return flagged

    def _report_spike(self, step: int, value: float, y: float, z: float, expected: float, out: list[Anomaly]) -> None:
        if "spike" not in self.kinds:
            return
        severity = "warning" if y - expected >= self._rise(self.spike_warn_ratio, expected) else "info"
        text = msg.spike(self.series, step, value, self._value_of(expected), z, loss_like=self.mode == "min")
        out.append(Anomaly("spike", step, severity, text, self.series, z, value))

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The streaming state as plain Python types (the LR schedule is configuration: not included)."""
        keys = _STATE_KEYS + _NEW_KEYS
        return {k: (list(v) if isinstance(v, list) else v) for k, v in ((k, getattr(self, k)) for k in keys)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"`state` lacks the detector keys {missing}")
        for k in _STATE_KEYS:
            v = state[k]
            setattr(self, k, [float(x) for x in v] if isinstance(v, list) else v)
        self._reset_rise()  # states saved before the sustained-rise rule: it starts afresh
        for k in _NEW_KEYS:
            if k in state:
                v = state[k]
                setattr(self, k, [float(x) for x in v] if isinstance(v, list) else v)
