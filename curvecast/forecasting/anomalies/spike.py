"""SpikeCheck: a value far above the local baseline that is not a level shift."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from curvecast.forecasting.anomalies.blowup import early_noise
from curvecast.forecasting.anomalies.check import Check
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.excursions import RECORD_NOISES, like, note
from curvecast.forecasting.anomalies.level import PROJECT, SeriesLevel
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.stats import median, times

__all__ = ["ABSURD_RATIO", "SpikeCheck"]

# A loss a million times its baseline is a spike whatever the noise says: a few such points among the first of a
# series make every noise estimate huge (a VAE's NLL at 1e7-1e14 on 6 of its 14 logged batches, where it sits near
# 140, made none of them stand out). Not a thousand times: healthy runs' losses near zero swing that much from batch
# to batch (the live runs' converge_zero and mlp_classification: 11 false warnings at 1e3). And only where it gives
# back at least ABSURD_GIVEN_BACK of the progress the loss made (a converged loss's swing gives back little of it).
ABSURD_RATIO = 1e6
ABSURD_GIVEN_BACK = 0.01
# On the raw scale, a spike with this many departures of its size (either way) among the last few (see excursions.py)
# recurs: the series' own noise, a note. Two, not one: a rate, not a second bad batch.
RECURRING = 2


class SpikeCheck(Check):
    """Spikes, judged by the score the :class:`SeriesLevel` gives each point.

    - an outlier (robust z above ``spike_z`` and at least ``spike_min_rise`` above the baseline) is reported at
      once, once per run of outliers;
    - a smaller jump (z above ``spike_recover_z``, as far above the point before it) is confirmed by its recovery:
      the next value falls back by 4 noise units to within 2 of the baseline. It is reported one step late, with the
      jump's own step (a level shift never recovers, so it is no spike).

    - before the noise is known (a sparse curve's first points), a point ``spike_recover_z`` times the first
      differences' spread above the median of the points before it is noted (``info``).

    ``warning`` when the value is at least ``spike_warn_ratio`` times the baseline, outside the early transient (see
    :class:`~curvecast.forecasting.anomalies.progress.Progress`), not within ``CROWDED_POINTS`` of the previous
    outlier (the series getting noisier) and, on the raw scale (a loss at or through zero, where a ratio to the
    baseline means nothing), with fewer than ``RECURRING`` departures of half its rise or more, either way, among the
    latest the series made (``excursions.py``: its own noise), else ``info``. Muted in the warmup and after a scheduled
    LR rise.
    """

    kind = "spike"
    STATE = ("in_spike", "pending", "excursions")

    def __init__(self, level: SeriesLevel, settings: DetectorSettings) -> None:
        super().__init__(level, settings)
        self.recover_z, self.warn_ratio = settings.spike_recover_z, settings.spike_warn_ratio
        self.min_rise = settings.spike_min_rise
        self.in_spike = False  # the previous scored point was an outlier
        self.pending: list[float] | None = None  # [step, value, y, z, expected] of a jump awaiting recovery
        self.excursions: list[float] = []  # the latest departures from the baseline, on the raw scale (excursions.py)

    def read_state(self, state: Any) -> dict[str, Any]:
        # A state saved before the departures were kept has none: they start empty (a few points of memory lost).
        if isinstance(state, Mapping) and "excursions" not in state:
            state = {**state, "excursions": []}
        return super().read_state(state)

    def update(self, step: int, value: float) -> list[Anomaly]:
        level, score = self.level, self.level.score
        if score is None:
            return self._early(step, value)
        y, events = level.y, []
        if self.pending is not None:
            # A smaller jump counts once the next value falls back: a jump that recovers.
            p_step, p_value, p_y, p_z, p_expected = self.pending
            self.pending = None
            # Back within 2 noise units of the level it left, and the jump stood out from the point before.
            back = y - p_expected <= 2.0 * score.noise and p_y - y >= 4.0 * score.noise
            recent = level.recent  # [..., the point before the jump, the jump, this point]
            if back and len(recent) > 2 and p_y - recent[-3] >= self.recover_z * score.noise and not level.muted:
                events.append(self._spike(int(p_step), p_value, p_y, p_z, p_expected, at=level.n - 1))
        absurd = self._absurd(y, score.expected)
        if (score.outlier or absurd) and not self.in_spike and not level.muted:
            events.append(self._spike(step, value, y, score.z, score.expected, at=level.n, absurd=absurd))
        elif not score.outlier and score.z > self.recover_z and score.stands_out and not self.in_spike:
            self.pending = [float(step), value, y, score.z, score.expected]
        self.in_spike = score.outlier or absurd
        if not level.log_scale and abs(y - score.expected) >= RECORD_NOISES * score.noise:
            note(self.excursions, level.n, abs(y - score.expected))  # after the judging: a spike is not its own noise
        return events

    def _absurd(self, y: float, base: float) -> bool:
        """A loss (positive, better low) ``ABSURD_RATIO`` times ``base`` or more, giving back ``ABSURD_GIVEN_BACK`` of
        the progress made (see Progress)."""
        level = self.level
        return (
            level.log_scale
            and level.mode == "min"
            and y - base >= math.log(ABSURD_RATIO)
            and level.progress.given_back(y) >= ABSURD_GIVEN_BACK
        )

    def _early(self, step: int, value: float) -> list[Anomaly]:
        """Before the noise is known (a sparse evaluation curve's first points): a point ``spike_recover_z`` times the
        first differences' spread (``early_noise``) above the median of the points before it is noted (``info``: the
        spread of a few points is a weak yardstick), so that a spike there is not missed altogether."""
        level = self.level
        if level.muted or len(level.recent) < 2:
            return []
        y, before = level.y, median(level.recent[-PROJECT - 1 : -1])
        noise = early_noise(level, before)
        absurd = self._absurd(y, before)
        was_absurd, self.in_spike = self.in_spike, absurd  # once per run of such points
        if absurd and not was_absurd:
            z = (y - before) / noise if math.isfinite(noise) and noise > 0 else math.inf
            text = message(level.series, step, value, level.value_of(before), z, loss_like=True)
            return [Anomaly(self.kind, step, "warning", text, level.series, z, value)]
        needed = max(self.recover_z * noise, level.rise(1.0 + self.min_rise, before))
        if absurd or not math.isfinite(noise) or y - before < needed:
            return []
        z = (y - before) / noise
        text = message(level.series, step, value, level.value_of(before), z, loss_like=level.mode == "min")
        return [Anomaly(self.kind, step, "info", text, level.series, z, value)]

    def _spike(
        self, step: int, value: float, y: float, z: float, expected: float, *, at: int, absurd: bool = False
    ) -> Anomaly:
        """The spike of ``value`` at ``step``, the series' ``at``-th point."""
        level = self.level
        # In the early transient (the loss still falls fast) a jump is often the first point of a noisier floor the
        # steep fall lands on (the noise was learnt on the smooth fall): said, but as a note.
        # So is an outlier close after another (``CROWDED_POINTS``): the series is getting noisier. Not so a
        # million-fold jump (``ABSURD_RATIO``).
        # On the raw scale, so is a spike that the series' own departures match in size (``RECURRING``).
        large = y - expected >= level.rise(self.warn_ratio, expected)
        recurs = not level.log_scale and like(self.excursions, at, y - expected) >= RECURRING
        quiet = level.progress.falling_fast or level.crowded or recurs
        severity = "warning" if absurd or (large and not quiet) else "info"
        text = message(level.series, step, value, level.value_of(expected), z, loss_like=level.mode == "min")
        return Anomaly(self.kind, step, severity, text, level.series, z, value)


def message(series: str, step: int, value: float, expected: float, z: float, *, loss_like: bool) -> str:
    advice = (
        "A one-step jump usually comes from an unusual batch and recovers; if spikes recur or grow, "
        "lower the LR or tighten gradient clipping."
        if loss_like
        else "If it recurs, check the batch at that step and the LR."
    )
    return (
        f"{series} spiked to {value:.4g} at step {step}, {times(value, expected, 'the expected')} "
        f"({z:.0f} robust standard deviations). {advice}"
    )
