"""AnomalyDetector: streaming detection of spikes, divergence, non-finite values, plateaus and slowdowns."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from curvecast.forecasting.anomalies.check import Check
from curvecast.forecasting.anomalies.divergence import DivergenceCheck
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import SeriesLevel
from curvecast.forecasting.anomalies.nonfinite import NonfiniteCheck
from curvecast.forecasting.anomalies.plateau import PlateauCheck
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.slowdown import SlowdownCheck
from curvecast.forecasting.anomalies.spike import SpikeCheck
from curvecast.forecasting.anomalies.state import Stateful
from curvecast.forecasting.anomalies.stats import check_step, check_value
from curvecast.forecasting.schedule import LRSchedule
from curvecast.series import TRAIN_LOSS
from curvecast.state_checks import checked_mapping

__all__ = ["CHECKS", "DEFAULT_KINDS", "AnomalyDetector"]

# Every check a detector can run, keyed by the kind it reports, in the order they run on each point (their events
# come out in this order). Registering a new kind is one line here (its name also goes into event.KINDS).
CHECKS: dict[str, type[Check]] = {
    NonfiniteCheck.kind: NonfiniteCheck,
    SpikeCheck.kind: SpikeCheck,
    DivergenceCheck.kind: DivergenceCheck,
    PlateauCheck.kind: PlateauCheck,
    SlowdownCheck.kind: SlowdownCheck,
}
DEFAULT_KINDS = {"min": ("nonfinite", "spike", "divergence", "plateau"), "max": ("nonfinite", "slowdown")}


class AnomalyDetector:
    """Watches one metric series, one value per step, and reports stability events as they happen.

    Each value is scored on the log scale (noise of a loss is roughly multiplicative) against a
    robust local baseline: the median of the last 7 points projected forward by the median of the
    last 16 first differences, with the noise taken as 1.4826 MAD of up to ``window_points``
    first differences (points flagged as spikes stay out of it); see :class:`SeriesLevel`. All work
    per update is on windows of fixed size, so an update is O(1) and memory is bounded for any run length.
    Each kind is one check (:data:`CHECKS`) that owns its state and reads the shared level:

    - ``nonfinite`` (critical): NaN or inf, at its own step; reported once per run of such values.
    - ``spike``: robust z above ``spike_z`` and at least ``spike_min_rise`` above the baseline,
      reported at once; or z above ``spike_recover_z``, as far above the point before it, and confirmed
      by its recovery: the next value falls back by 4 noise units to within 2 of the baseline (reported
      one step late, with the jump's own step; a level shift never recovers, so it is no spike). The
      noise is the larger of that of the last 128 and the last 32 differences, so a noisier stretch
      raises it at once. More than ``persist_points`` consecutive flags are taken as a level shift.
      ``warning`` when the value is at least ``spike_warn_ratio`` times the baseline, else ``info`` (always
      ``info`` in the early transient, while the loss still falls fast, and, on the raw scale, where the series made
      departures of its size before, either way: its own noise, see :mod:`.excursions`).
    - ``divergence``: ``warning`` from a one-sided CUSUM (k 0.5, clipped at z 3, threshold
      ``drift_h``) against the median of the last 32 points, which lags a climb but not the noise;
      from a sustained rise of the median of 7 points above its recent best, by a margin scaled
      to the level's own noise and the run's past wander (see :class:`DivergenceCheck`);
      or, on a sparse series before the noise is known, when the median of 3 points jumps to
      ``divergence_ratio`` times the best level; ``critical`` once ``confirm_points`` consecutive values
      spanning at least ``confirm_steps`` steps stay at ``divergence_ratio`` times the best level (the
      running minimum of the median of 3 points), their median several noise units above it, and only
      against a best the series held for ``confirm_steps`` steps too (a low it touched, a few lucky
      batches or a DQN's TD loss in its first steps, is no level it diverged from; after a scheduled LR
      rise the best waits for 3 points). On the raw scale (a loss at or below 0) a rise is measured
      against the progress made, and a series that made none has no yardstick for it. Every
      divergence alarm must also give back part of the progress the series made (see
      :class:`~curvecast.forecasting.anomalies.progress.Progress`: a converged loss that wobbles has not
      diverged), and a large part while it still falls fast (the early transient). For ``mode="max"``
      (an accuracy, a reward) the part is large: a score must fall back most of the way to where it started.
    - ``plateau`` (info): the median of 9 points has not improved by ``plateau_rtol`` over the last
      ``plateau_fraction`` of the steps seen and at least ``plateau_points`` points; muted when
      the known LR schedule still drops by half ahead or is already below 30% of its peak.
    - ``slowdown`` (warning, for throughput with ``mode="max"``): the median of the last 30 points
      falls below ``slowdown_ratio`` times the median of the 50 points after warmup, and stays there
      longer than the machine's own dips (see :class:`~curvecast.forecasting.anomalies.slowdown.SlowdownCheck`).

    Spike and divergence alarms are muted for the first ``warmup_points`` points (unless those span 200
    steps: a sparse series) and, when the LR schedule is known, while the LR rises (warmup, warm restarts)
    and 8 points after; a rise also resets the best level, so a scheduled restart is neither a spike nor a
    divergence.

    The thresholds named above (``spike_z``, ``drift_h``, ...) are the fields of ``settings``.

    Args:
        series: name of the series, carried by every event (e.g. ``"loss"``, ``"grad_norm"``).
        mode: ``"min"`` when higher values are worse (losses, gradient norms), ``"max"`` when lower
            values are worse (throughput, accuracy).
        kinds: which kinds to report; default ``DEFAULT_KINDS[mode]``.
        lrs: the planned LR at every step ``0..N``, when known (see :meth:`set_schedule`).
        log_scale: score log values (switches to the raw scale for good if a value <= 0 arrives).
        settings: the thresholds (:class:`~curvecast.forecasting.anomalies.settings.DetectorSettings`; default
            ``DetectorSettings()``).

    Attributes:
        series, mode, kinds, settings: the configuration (``settings`` holds the thresholds).
        level: the shared :class:`SeriesLevel` (read-only; replaced when the scale switches or a state loads).
        checks: the running checks, keyed by kind (read-only).

    Example:
        >>> det = AnomalyDetector()
        >>> curve = [2.0 + 8.0 / (1 + t / 20) + 0.01 * (t % 3) + (3.0 if t == 200 else 0.0) for t in range(300)]
        >>> events = [e for t, v in enumerate(curve) for e in det.update(t, v)]
        >>> [(e.kind, e.step, e.severity) for e in events]
        [('spike', 200, 'warning')]
    """

    def __init__(
        self,
        series: str = TRAIN_LOSS,
        *,
        mode: str = "min",
        kinds: Collection[str] | None = None,
        lrs: Sequence[float] | LRSchedule | None = None,
        log_scale: bool = True,
        settings: DetectorSettings | None = None,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(
                f"Expected `mode` to be 'min' (higher is worse) or 'max' (lower is worse), but got {mode!r}"
            )
        kinds = DEFAULT_KINDS[mode] if kinds is None else tuple(kinds)
        unknown = [k for k in kinds if k not in CHECKS]
        if unknown:
            raise ValueError(f"Expected `kinds` to be among {tuple(CHECKS)}, but got {unknown}")
        if settings is not None and not isinstance(settings, DetectorSettings):
            raise TypeError(
                f"Expected `settings` to be a DetectorSettings (the thresholds), but got {type(settings).__name__}"
            )
        self.settings = DetectorSettings() if settings is None else settings
        self.series, self.mode, self.kinds = series, mode, frozenset(kinds)
        self.level, self.checks = self._fresh(log_scale, _as_schedule(lrs))

    def _fresh(self, log_scale: bool, schedule: LRSchedule | None) -> tuple[SeriesLevel, dict[str, Check]]:
        """A new level and the selected checks on it, with nothing seen yet."""
        level = SeriesLevel(self.series, mode=self.mode, log_scale=log_scale, settings=self.settings, schedule=schedule)
        return level, {kind: check(level, self.settings) for kind, check in CHECKS.items() if kind in self.kinds}

    def epoch_started(self, step: int) -> None:
        """A training epoch starts at optimizer step ``step``, where a run may change its data or loss by design."""
        self.level.epoch_started(step)

    def set_schedule(self, lrs: Sequence[float] | LRSchedule | None) -> None:
        """Tell the detector the planned LR at every step ``0..N`` (None forgets it).

        With a schedule, LR rises (warmup, warm restarts) mute spike and divergence alarms, and a
        plateau is not reported while the LR still drops by half ahead or is below 30% of its peak.
        """
        self.level.schedule = _as_schedule(lrs)

    # --- the public streaming interface ------------------------------------------------------
    def update(self, step: int, value: float) -> list[Anomaly]:
        """Feed the value of the series at ``step`` (increasing); return the events it triggers."""
        level = self.level
        step = check_step(step, level.last_step)
        value = check_value(value)
        previous_step = level.last_step
        level.enter(step)
        if not math.isfinite(value):
            return [event for check in self.checks.values() for event in check.on_nonfinite(step, value)]
        if level.log_scale and value <= 0.0:
            # Logs are undefined: restart the statistics on the raw scale, from the recent points and the best held.
            old_level, old_checks = level, self.checks
            self.level, self.checks = self._fresh(False, level.schedule)
            level = self.level
            level.carry_over(old_level)
            for kind, check in self.checks.items():
                check.carry_over(old_checks[kind])
            level.enter(step)
        schedule = level.schedule
        # A scheduled LR rise: the loss may climb for a while; the level and the checks start afresh.
        lr_rose = schedule is not None and previous_step is not None and schedule.rose_between(previous_step, step)
        level.absorb(value, lr_rose=lr_rose)
        events: list[Anomaly] = []
        for check in self.checks.values():
            if lr_rose:
                check.on_lr_rise()
            events += check.update(step, value)
        return events

    # --- what other code reads ---------------------------------------------------------------
    @property
    def schedule(self) -> LRSchedule | None:
        """The planned LR schedule, when known."""
        return self.level.schedule

    @property
    def log_scale(self) -> bool:
        """Whether values are scored on the log scale (False for good once a value <= 0 arrived)."""
        return self.level.log_scale

    @property
    def n(self) -> int:
        """Finite values seen (since the switch to the raw scale, if any)."""
        return self.level.n

    @property
    def first_step(self) -> int | None:
        """The first step fed (since the switch to the raw scale, if any)."""
        return self.level.first_step

    @property
    def last_step(self) -> int | None:
        """The latest step fed (None before the first): the next one must be larger."""
        return self.level.last_step

    @property
    def last_z(self) -> float:
        """The robust z-score of the latest finite value (NaN before the noise is known)."""
        return self.level.last_z

    @property
    def sigma(self) -> float:
        """The per-point noise on the scoring scale, from the accepted differences (NaN before it is known)."""
        return self.level.sigma

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The streaming state, nested by part (``{"level": {...}, "spike": {...}, ...}``), as plain Python types
        (the LR schedule is configuration: not included)."""
        return {name: part.state_dict() for name, part in self._parts(self.level, self.checks).items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict` by a detector with the same kinds.

        Raises ``KeyError`` for a state of another shape (one saved by a version before the checks owned their
        state, or with other kinds), ``TypeError`` or ``ValueError`` naming a damaged field, and leaves the detector
        as it was.
        """
        self.level, self.checks = self.restored_parts(state)  # only once every part has loaded

    def restored_parts(self, state: Any) -> tuple[SeriesLevel, dict[str, Check]]:
        """New level and checks loaded from ``state`` (as :meth:`load_state_dict` takes it), the detector left as it
        is: an owner restoring several detectors swaps the parts in once all of them have loaded."""
        state = checked_mapping(f"the {self.series!r} detector state", state)
        missing = [name for name in self._parts(self.level, self.checks) if name not in state]
        if missing:
            raise KeyError(
                f"`state` lacks the detector keys {missing}: it was saved with other kinds or by an older version "
                "(a flat state), and cannot be restored"
            )
        level, checks = self._fresh(self.level.log_scale, self.level.schedule)
        for name, part in self._parts(level, checks).items():
            part.load_state_dict(state[name])
        return level, checks

    @staticmethod
    def _parts(level: SeriesLevel, checks: Mapping[str, Check]) -> dict[str, Stateful]:
        return {"level": level, **checks}


def _as_schedule(lrs: Sequence[float] | LRSchedule | None) -> LRSchedule | None:
    return None if lrs is None else lrs if isinstance(lrs, LRSchedule) else LRSchedule(lrs)
