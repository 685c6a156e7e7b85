"""Divergence of one series: a jump, a sustained rise, a drift (CUSUM), and the confirmed blow-up."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from curvecast.forecasting import anomaly_messages as msg
from curvecast.forecasting.anomaly_event import Anomaly
from curvecast.forecasting.anomaly_stats import median, push, sigma_of_diffs

__all__ = ["DivergenceChecks"]

_LEVEL = 7  # points in the short level of the sustained-rise rule
_LEVEL_SD = 1.2533 / math.sqrt(_LEVEL)  # noise of a median of _LEVEL points, in units of the per-point noise
_RISE_Z = 2.0  # how far (in level noise) the level must stand above the debiased running best
_RISE_RUN = 3  # consecutive points it must stay there
_RISE_MIN = 0.08  # and at least this relative rise (low-noise curves wander by more than their noise)
_LEVELS = 64 + 2 * _LEVEL  # levels kept for the level's own wander (64 lag-7 differences)
_BEST_OF = 48  # the running best is the lowest of the last 48 levels (a bounded look-back)
_PAST_LAG = 16  # the largest excess of the run so far, taken this many points back, calibrates the margin
_PAST_FACTOR = 1.25  # a rise must stand this much above the largest excess of the run so far


class DivergenceChecks:
    """The divergence checks of :class:`~curvecast.forecasting.anomaly_detector.AnomalyDetector`.

    A mixin: the state lives on the detector (flat, so a saved state stays one dict of plain values).

    - **jump**: with too few points to know the noise, a value ``divergence_ratio`` times the best level;
    - **sustained rise**: the median of the last 7 points (the level) stands above the lowest level
      of the last 48 points for 3 consecutive points, by at least 8% and by a margin in noise units
      of the level: 2 plus the expected low bias of a minimum over the levels behind it
      (``sqrt(2 ln(points / 7))``), and at least 1.25 times the largest excess the run has shown
      before (so curves whose level wanders widely set themselves a higher bar). The level's noise
      is the larger of what the per-point noise implies and the level's own wander (second
      differences of past levels). A steady climb on a noisy, sparse curve, where the CUSUM
      against a lagging median starts late, is caught within a few points of its onset;
    - **drift**: a one-sided CUSUM of z against the median of the last 32 points;
    - **confirmed** (critical): ``confirm_points`` consecutive values over ``confirm_steps`` steps at
      ``divergence_ratio`` times the best level.

    The warnings (jump aside) share one episode: after one fires, neither fires again until the
    level is back near where it was.
    """

    if TYPE_CHECKING:
        series: str
        kinds: frozenset[str]
        recent: list[float]
        diffs: list[float]
        n: int
        mute_until: int
        log_scale: bool
        sigma: float
        best: float
        cusum: float
        cusum_zero_step: int | None
        cusum_zero_level: float | None
        drift_armed: bool
        drift_h: float
        drift_min_rise: float
        elev_run: int
        elev_since: int
        critical_armed: bool
        jump_armed: bool
        divergence_ratio: float
        confirm_points: int
        confirm_steps: int
        rise_best: float
        rise_best_step: int | None
        rise_count: int
        rise_run: int
        rise_armed: bool
        rise_levels: list[float]
        rise_zs: list[float]
        rise_peak: float

        def _rise(self, ratio: float, y: float) -> float: ...
        def _value_of(self, y: float) -> float: ...
        def _scale(self, y: float) -> float: ...

    def _reset_rise(self) -> None:
        self.rise_best, self.rise_best_step, self.rise_count, self.rise_run, self.rise_armed = (
            math.inf, None, 0, 0, True
        )  # fmt: skip
        self.rise_levels, self.rise_zs, self.rise_peak = [], [], 0.0

    def _level_noise(self) -> float:
        """Noise of the short level from its own wander: second differences of past levels 7 apart.

        Real curves wander more than independent noise would let a median of 7 points wander
        (batches and data order are correlated), so the level is judged by its own history. Second
        differences leave out the trend and its curvature (a steep descent is no wander); the latest
        levels are left out so that a rise under way does not inflate its own yardstick.
        """
        old = self.rise_levels[:-_LEVEL]
        if len(old) < 4 * _LEVEL:
            return 0.0
        second = [a - 2.0 * b + c for a, b, c in zip(old, old[_LEVEL:], old[2 * _LEVEL :], strict=False)]
        return sigma_of_diffs(second) / math.sqrt(3.0)  # var(second) = 6 var(level); sigma_of_diffs halves

    def _sustained_rise(self, step: int, value: float, muted: bool, events: list[Anomaly]) -> None:
        if len(self.recent) < _LEVEL or len(self.diffs) < 8 or muted:
            return
        level = median(self.recent[-_LEVEL:])
        push(self.rise_levels, level, _LEVELS)
        self.rise_count += 1
        window = self.rise_levels[-_BEST_OF:]
        low = min(range(len(window)), key=window.__getitem__)
        if window[low] != self.rise_best or self.rise_best_step is None:
            self.rise_best, self.rise_best_step = window[low], step - (len(window) - 1 - low)
        sd = _LEVEL_SD * self._scale(level)
        effective = min(self.rise_count, _BEST_OF) / _LEVEL  # roughly independent levels behind the best
        bias = math.sqrt(2.0 * math.log(effective)) if effective > 1.0 else 0.0
        excess = level - self.rise_best
        # The run's own largest excess so far (lagged, so a rise under way does not raise its own bar):
        # curves whose level wanders widely (correlated batches, noise bursts) set themselves a higher bar.
        push(self.rise_zs, excess / sd, _PAST_LAG)
        if len(self.rise_zs) == _PAST_LAG:
            self.rise_peak = max(self.rise_peak, self.rise_zs[0])
        z_bar = max(_RISE_Z + bias, _PAST_FACTOR * self.rise_peak)
        margin = max(sd * z_bar, self._rise(1.0 + _RISE_MIN, level))
        if excess > margin:  # about to count: check against the level's own wander too
            sd = max(sd, self._level_noise())
            margin = max(margin, sd * z_bar)
        self.rise_run = self.rise_run + 1 if excess > margin else 0
        if excess < margin / 2:
            self.rise_armed = True
        if self.rise_run >= _RISE_RUN and self.rise_armed and "divergence" in self.kinds:
            self.rise_armed = self.drift_armed = False
            self.cusum = 0.0
            onset = self.rise_best_step if self.rise_best_step is not None else step
            text = msg.divergence_drift(self.series, step, onset, value, self._value_of(self.rise_best))
            events.append(Anomaly("divergence", step, "warning", text, self.series, excess / sd, value))

    def _divergence(self, step: int, value: float, y: float, muted: bool, events: list[Anomaly]) -> None:
        short = median(self.recent[-3:])
        best_before = self.best
        self.best = min(self.best, short)
        if "divergence" not in self.kinds:
            return
        best_value = self._value_of(best_before)
        # Confirmation: consecutive values far above the best level (single spikes never confirm).
        elevated = math.isfinite(best_before) and y - best_before >= self._rise(self.divergence_ratio, best_before)
        self.elev_run = self.elev_run + 1 if elevated else 0
        if self.elev_run == 1:
            self.elev_since = step
        if not elevated and self.elev_run == 0 and short - self.best < self._rise(self.divergence_ratio, short) / 2:
            self.critical_armed = self.jump_armed = True
        if self.elev_run == 1 and len(self.diffs) < 8 and self.jump_armed:
            # Too few points to know the noise (sparse evaluations): a jump this large is news.
            self.jump_armed = False
            events.append(Anomaly("divergence", step, "warning", msg.divergence_jump(self.series, step, value,
                                  best_value), self.series, value / best_value, value))  # fmt: skip
        if (
            self.elev_run >= self.confirm_points
            and step - self.elev_since >= self.confirm_steps
            and self.critical_armed
            and self.n > self.mute_until
        ):
            self.critical_armed = self.drift_armed = False
            text = msg.divergence_confirmed(self.series, step, self.elev_since, value, best_value,
                                            self.divergence_ratio)  # fmt: skip
            events.append(Anomaly("divergence", step, "critical", text, self.series, value / best_value, value))
        # Drift: one-sided CUSUM of z against the median of the last 32 points (before this one).
        self._sustained_rise(step, value, muted, events)
        if len(self.diffs) < 8:
            return
        base = median(self.recent[:-1]) if len(self.recent) > 1 else y
        self._scale(base)  # refreshes the noise; the drift test keeps the long-run noise alone
        r = min((y - base) / max(self.sigma, 0.002 if self.log_scale else 0.002 * abs(base) + 1e-12), 3.0)
        self.cusum = max(0.0, self.cusum + r - 0.5)
        level5 = median(self.recent[-5:])
        if self.cusum == 0.0:
            self.cusum_zero_step, self.cusum_zero_level = step, min(base, level5)
        if not self.drift_armed and self.cusum_zero_level is not None and short <= self.cusum_zero_level:
            self.drift_armed = True
        # The CUSUM alone fires on heavy-tailed noise; a drift also needs the median of 5 points up.
        risen = self.cusum_zero_level is not None and level5 - self.cusum_zero_level >= self._rise(
            1.0 + self.drift_min_rise, level5
        )
        if self.cusum > self.drift_h and risen and self.drift_armed and not muted:
            self.drift_armed, self.rise_armed, self.cusum = False, False, 0.0
            onset = self.cusum_zero_step if self.cusum_zero_step is not None else step
            level = self.cusum_zero_level if self.cusum_zero_level is not None else base
            text = msg.divergence_drift(self.series, step, onset, value, self._value_of(level))
            events.append(Anomaly("divergence", step, "warning", text, self.series, r, value))
