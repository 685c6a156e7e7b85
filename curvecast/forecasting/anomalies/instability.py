"""InstabilityMonitor: early warning (``instability_risk``) from the loss and the gradient norm together."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from curvecast.forecasting.anomalies.detector import AnomalyDetector
from curvecast.forecasting.anomalies.divergence import DivergenceCheck
from curvecast.forecasting.anomalies.event import Anomaly
from curvecast.forecasting.anomalies.level import BASELINE_POINTS
from curvecast.forecasting.anomalies.settings import DetectorSettings
from curvecast.forecasting.anomalies.stats import check_step, check_value
from curvecast.forecasting.anomalies.turn_up import LOWS, TurnUp
from curvecast.forecasting.schedule import LRSchedule
from curvecast.series import GRAD_NORM, TRAIN_LOSS
from curvecast.state_checks import (
    checked_bool,
    checked_mapping,
    checked_real,
    checked_reals,
    checked_whole,
    checked_wholes,
)

__all__ = ["GRAD_SPIKE_MIN_RISE", "GRAD_SPIKE_WARN_RATIO", "InstabilityMonitor", "default_grad_detector"]

_CREEP_RISE = 0.5  # fraction of the detector's divergence rise that makes the CUSUM a creep
# The gradient norm of a healthy run moves by tens of percent from one batch to the next: the reported false
# gradient-norm "spikes" were 1.03-1.45x, those of the healthy live runs of benchmarks/false_alarms.py 1.35-1.6x and
# none a real outlier in hindsight, where the jumps that come with an instability are several-fold. A gradient-norm
# spike must be 1.5x its baseline, a warning 2x (leaving one group out, the warning-level figures are the same for any
# minimum from 1.02x to 2x: this one removes notes, not warnings).
GRAD_SPIKE_MIN_RISE = 0.5
GRAD_SPIKE_WARN_RATIO = 2.0
# After a warning, the precursors must have been absent this many points in a row before another can come: a healthy
# run on unshuffled data meets the same hard batches every epoch, and re-armed at the first point without them it was
# warned every epoch (28 warnings in 30 epochs).
REARM_QUIET_POINTS = 100
# The creep must hold this many points in a row, as the turn-up must: a healthy Gaussian NLL (batch 32) near -1.6,
# whose gradient norm grows 3x as its predicted variance shrinks, had one batch of -1.2 lift the median of 5 clear of
# its noise for a single step, and that one point made an instability warning. A real creep holds for many points.
CREEP_POINTS = 2
# The keys a saved state must hold ("up_peak", "last_move", "quiet" and "creep_run" may be absent: a state saved before
# them loads as if no swing had been seen, as quiet long enough, and with no creep under way).
_STATE_KEYS = (
    "loss", "grad", "n", "last_step", "armed", "loss_spike_n", "grad_spike_n", "spike_ns", "grad_low", "first_step",
    "lows", "up_run", "up_armed",
)  # fmt: skip


class InstabilityMonitor:
    """Watches the loss and the pre-clip total gradient norm of each step and warns before a blow-up.

    It wraps one :class:`AnomalyDetector` per series (their events are passed through) and adds an
    ``instability_risk`` warning when precursors weighing at least ``min_precursors`` hold at once, one of them
    shown by the loss itself (a turn-up, a co-spike or a creep: a gradient norm that grows, a noisier loss or more
    spikes while the loss goes on falling are what healthy runs do):

    - **loss turned up** (counts twice: the loss-only signal): for 2 consecutive points, the loss
      stands above the lowest of the (at least 4) values before it, up to 16, by more than ``turn_up``
      (relative) and by more than ``turn_up_z`` times their noise, taken from their second differences
      (a steep fall slowing down is a trend, not noise), widened by the low bias of a minimum
      (``1 + sqrt(2 ln n)``) once the detector knows the noise (8 accepted differences). The rise
      must also stand 1.25 times above the largest swing the loss showed before (a step back against
      the one before it): a single-batch loss logged every 50 steps swings 2-30x from point to point, a
      smooth evaluation curve that falls steadily shows none, and a blow-up that stays up none either.
      With 8 values kept it must clear their noise on the raw scale as well (near zero, as a Gaussian
      NLL on its way below it, a ratio means nothing: the differences judge). Not in the first 100
      steps (early per-step losses bump up as a matter of course). One point is never enough: a
      single batch far above a smooth fall is a spike, which recovers at the next point;
    - **co-spike** (counts twice: the strong signal): a loss spike and a gradient-norm spike within
      ``co_spike_points`` points of each other (OLMo 2, BLOOM: gradient spikes lead loss spikes), both
      warnings (a spike the detectors only note, in the early transient or on a series getting
      noisier, is no precursor);
    - **gradient-norm growth**: the median gradient norm of the last 32 points is at least
      ``grad_growth`` times its lowest such median so far (Wortsman et al. 2023: norms grow before
      instabilities emerge);
    - **rising spike rate**: at least 3 loss or gradient spikes (warnings) in the last
      ``window_points`` points, and more than in the window before;
    - **loss creeping up**: the loss detector's upward CUSUM is past half its alarm level, and the
      median of the last 5 points is half its divergence rise above where the CUSUM last was zero,
      on ``CREEP_POINTS`` consecutive points;
    - **loss noise rising**: the noise of the last 16 loss differences is at least 3 times the
      noise of the last 128.

    (A loss stalled at high LR is no precursor here: the loss of a healthy warmup-stable-decay run
    stalls through its constant-LR phase, and together with a creeping CUSUM it raised most of the
    false warnings on clean per-step runs.)

    The warning is reported once per episode; it re-arms when no precursor holds.

    Args:
        lrs: the planned LR at every step ``0..N``, when known (passed to the loss detector). A schedule the monitor
            cannot use (empty, all zeros, or with a negative or non-finite LR) is skipped: the loss is watched as if
            none were known.
        loss_detector: the detector for the loss (default ``AnomalyDetector(TRAIN_LOSS, lrs=lrs)``).
        grad_detector: the detector for the gradient norm (default: non-finite values and spikes of at least
            ``GRAD_SPIKE_MIN_RISE``, since a slowly rising gradient norm is normal late in training).

    Example:
        >>> mon = InstabilityMonitor()
        >>> events = []
        >>> for t in range(400):
        ...     loss = 2.0 + 0.01 * (t % 3) + (1.0 if t == 300 else 0.0)
        ...     grad_norm = 0.5 + 0.01 * (t % 2) + (5.0 if t == 299 else 0.0)  # leads the loss by a step
        ...     events += mon.update(t, loss=loss, grad_norm=grad_norm)
        >>> [(e.kind, e.series, e.step) for e in events if e.kind != "plateau"]
        [('spike', 'grad_norm', 299), ('spike', 'loss', 300), ('instability_risk', 'loss', 300)]
    """

    def __init__(
        self,
        *,
        lrs: Sequence[float] | LRSchedule | None = None,
        loss_detector: AnomalyDetector | None = None,
        grad_detector: AnomalyDetector | None = None,
        min_precursors: int = 2,
        co_spike_points: int = 3,
        grad_growth: float = 3.0,
        window_points: int = 200,
        turn_up: float = 0.02,
        turn_up_z: float = 3.0,
    ) -> None:
        if min_precursors < 1 or co_spike_points < 0 or window_points < 1:
            raise ValueError(
                "`min_precursors` and `window_points` must be >= 1 and `co_spike_points` >= 0, but got "
                f"{min_precursors}, {window_points}, {co_spike_points}"
            )
        if not turn_up > 0.0 or not turn_up_z > 0.0:
            raise ValueError(f"`turn_up` and `turn_up_z` must be > 0, but got {turn_up}, {turn_up_z}")
        if not grad_growth > 1.0:
            raise ValueError(f"`grad_growth` must be > 1, but got {grad_growth}")
        self.loss = loss_detector if loss_detector is not None else AnomalyDetector(TRAIN_LOSS, lrs=_usable(lrs))
        self.grad = grad_detector if grad_detector is not None else default_grad_detector()
        self.min_precursors, self.co_spike_points = min_precursors, co_spike_points
        self.grad_growth, self.window_points = grad_growth, window_points
        self.n, self.last_step, self.armed = 0, None, True
        self.quiet = REARM_QUIET_POINTS  # points in a row without a precursor (quiet long enough at the start)
        self.first_step: int | None = None
        self.loss_spike_n, self.grad_spike_n = -(10**9), -(10**9)
        self.spike_ns: list[int] = []  # point indices of recent spikes, at most two windows back
        self.grad_low = math.inf
        self.turn = TurnUp(turn_up, turn_up_z)  # the loss-only precursor
        self.creep_run = 0  # consecutive points of the loss with its CUSUM creeping

    def update(self, step: int, loss: float | None = None, grad_norm: float | None = None) -> list[Anomaly]:
        """Feed one step's loss and/or gradient norm; return the events of both series plus any warning."""
        step = check_step(step, self.last_step)
        if loss is not None:
            loss = check_value(loss)  # a float from here on (an int past the float range is inf)
        self.last_step = step
        if self.first_step is None:
            self.first_step = step
        self.n += 1
        events: list[Anomaly] = []
        if loss is not None:
            events += self.loss.update(step, loss)
        if grad_norm is not None:
            events += self.grad.update(step, grad_norm)
        for e in events:
            # A spike the detectors only note (the early transient's jumps, a series getting noisier) is no precursor.
            if e.kind == "spike" and e.severity != "info":
                self.spike_ns.append(self.n)
                if e.series == self.grad.series:
                    self.grad_spike_n = self.n
                else:
                    self.loss_spike_n = self.n
        if loss is not None:
            divergence = self.loss.checks.get(DivergenceCheck.kind)
            creeping = isinstance(divergence, DivergenceCheck) and divergence.drift.creeping(_CREEP_RISE)
            self.creep_run = self.creep_run + 1 if creeping else 0
        cut = self.n - 2 * self.window_points
        while self.spike_ns and self.spike_ns[0] <= cut:
            self.spike_ns.pop(0)
        found = self._precursors(step)
        turned = self.turn.update(loss, self.loss.level, self.last_step - self.first_step)
        if turned is not None:
            found.append((turned, 2, True))
        reasons = [r for r, _, _ in found]
        weight = sum(w for _, w, _ in found)
        # The loss itself must show it: a gradient norm that grows, a noisier loss or more spikes while the loss goes on
        # falling are what healthy runs do (a transformer's gradient norm grows threefold as it trains).
        led = any(leads for _, _, leads in found)
        self.quiet = 0 if reasons else self.quiet + 1
        if self.quiet >= REARM_QUIET_POINTS:
            self.armed = True
        level = self.loss.level
        # The turn-up precursor is built for the first points of sparse curves: it is muted only
        # while the LR rises; the others wait for the loss detector's warmup.
        muted = level.after_lr_rise or (turned is None and level.in_warmup)
        if self.armed and led and weight >= self.min_precursors and not muted:
            self.armed = False
            value = math.nan if loss is None else float(loss)
            text = message(step, reasons)
            events.append(Anomaly("instability_risk", step, "warning", text, self.loss.series, float(weight), value))
        return events

    def _precursors(self, step: int) -> list[tuple[str, int, bool]]:
        """The precursors that hold now, each with its weight and whether it is one the loss leads with."""
        reasons: list[tuple[str, int, bool]] = []
        if (
            abs(self.loss_spike_n - self.grad_spike_n) <= self.co_spike_points
            and self.n - max(self.loss_spike_n, self.grad_spike_n) <= self.co_spike_points
        ):
            reasons.append(("loss and gradient norm spiked together", 2, True))
        grad = self.grad.level
        if len(grad.recent) >= 16:
            grad_level = grad.recent_median(BASELINE_POINTS)
            self.grad_low = min(self.grad_low, grad_level)
            if grad_level - self.grad_low >= math.log(self.grad_growth) and grad.log_scale:
                reasons.append(
                    (f"gradient norm grew {math.exp(grad_level - self.grad_low):.1f}x from its low", 1, False)
                )
        recent = sum(1 for n in self.spike_ns if n > self.n - self.window_points)
        if recent >= 3 and recent > len(self.spike_ns) - recent:
            reasons.append((f"{recent} spikes in the last {self.window_points} points", 1, False))
        # The CUSUM alone wanders on heavy-tailed per-step noise: creeping also needs the median of
        # 5 points half the divergence rise above where the CUSUM last stood at zero.
        if self.creep_run >= CREEP_POINTS:
            reasons.append(("loss creeping up", 1, True))
        loss = self.loss.level
        if len(loss.diffs) >= 64 and loss.sigma > 0:
            short = loss.diffs_noise(16)  # shared with the sustained-rise rule's latest noise, and the slope's median
            if short >= 3.0 * loss.sigma:
                reasons.append((f"loss noise {short / loss.sigma:.1f}x its usual level", 1, False))
        return reasons

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Both detectors' state and the monitor's own, as plain Python types."""
        return {
            "loss": self.loss.state_dict(),
            "grad": self.grad.state_dict(),
            "n": self.n,
            "last_step": self.last_step,
            "armed": self.armed,
            "quiet": self.quiet,
            "loss_spike_n": self.loss_spike_n,
            "grad_spike_n": self.grad_spike_n,
            "spike_ns": list(self.spike_ns),
            "grad_low": self.grad_low,
            "first_step": self.first_step,
            "creep_run": self.creep_run,
            **self.turn.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a state of another shape is a ``KeyError``, a damaged field
        a ``TypeError`` or ``ValueError`` naming it, and neither changes anything."""
        self.set_state(self.read_state(state))

    def read_state(self, state: Any) -> dict[str, Any]:
        """Every field of ``state`` checked and both detectors' parts loaded anew, the monitor left as it is (an owner
        restoring it with other parts assigns them all with :meth:`set_state` once all have loaded)."""
        state = checked_mapping("the InstabilityMonitor state", state)
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"`state` lacks the instability monitor keys {missing}")
        values = _read_own_fields(state)
        values["loss"] = self.loss.restored_parts(state["loss"])
        values["grad"] = self.grad.restored_parts(state["grad"])
        return values

    def set_state(self, values: Mapping[str, Any]) -> None:
        """Assign what :meth:`read_state` read."""
        for name, value in values.items():
            if name in ("loss", "grad"):
                detector = self.loss if name == "loss" else self.grad
                detector.level, detector.checks = value
            else:
                setattr(self.turn if name in TurnUp.STATE else self, name, value)


def _read_own_fields(state: Mapping[str, Any]) -> dict[str, Any]:
    """The monitor's own fields of ``state``, checked: their kinds, and the bounds the point count ``n`` sets."""

    def field(name: str) -> str:
        return f"`InstabilityMonitor.{name}`"

    n = checked_whole(field("n"), state["n"], low=0)
    values: dict[str, Any] = {"n": n}
    for name in ("first_step", "last_step"):
        values[name] = None if state[name] is None else checked_whole(field(name), state[name])
    first, last = values["first_step"], values["last_step"]
    if (first is None) != (last is None) or (first is not None and first > last):
        raise ValueError(f"Expected {field('first_step')} <= {field('last_step')}, both None or neither, but got "
                         f"{first!r} and {last!r}")  # fmt: skip
    for name in ("armed", "up_armed"):
        values[name] = checked_bool(field(name), state[name])
    for name in ("loss_spike_n", "grad_spike_n"):  # the point count at the latest spike (-10**9: none yet)
        values[name] = checked_whole(field(name), state[name], high=n)
    spike_ns = checked_wholes(field("spike_ns"), state["spike_ns"], low=1, high=n)
    if any(b < a for a, b in zip(spike_ns, spike_ns[1:], strict=False)):
        raise ValueError(f"Expected {field('spike_ns')} to be in increasing order, but got {spike_ns}")
    values["spike_ns"] = spike_ns
    values["grad_low"] = checked_real(field("grad_low"), state["grad_low"], allow=(math.inf,))  # inf: none yet
    values["lows"] = checked_reals(field("lows"), state["lows"], max_len=LOWS)
    values["up_run"] = checked_whole(field("up_run"), state["up_run"], low=0, high=n)
    values["up_peak"] = checked_real(field("up_peak"), state.get("up_peak", 0.0), low=0.0)
    values["last_move"] = checked_real(field("last_move"), state.get("last_move", 0.0))
    values["quiet"] = checked_whole(field("quiet"), state.get("quiet", REARM_QUIET_POINTS), low=0)
    values["creep_run"] = checked_whole(field("creep_run"), state.get("creep_run", 0), low=0, high=n)
    return values


def _usable(lrs: Sequence[float] | LRSchedule | None) -> LRSchedule | None:
    """The planned schedule when it says something: None for one that is not a schedule (empty, a negative or
    non-finite LR) or that stays at 0 (no rise or drop to read)."""
    if lrs is None:
        return None
    try:
        schedule = lrs if isinstance(lrs, LRSchedule) else LRSchedule(lrs)
    except (TypeError, ValueError):
        return None
    return schedule if schedule.peak_lr > 0 else None


def default_grad_detector() -> AnomalyDetector:
    """The gradient norm's detector: non-finite values, and spikes large enough to stand out of its batch-to-batch
    swings (``GRAD_SPIKE_MIN_RISE``, ``GRAD_SPIKE_WARN_RATIO``)."""
    return AnomalyDetector(
        GRAD_NORM,
        kinds=("nonfinite", "spike"),
        settings=DetectorSettings(spike_min_rise=GRAD_SPIKE_MIN_RISE, spike_warn_ratio=GRAD_SPIKE_WARN_RATIO),
    )


def message(step: int, reasons: list[str]) -> str:
    return (
        f"Instability precursors at step {step}: {'; '.join(reasons)}. Blow-ups often follow such signs: "
        "save a checkpoint now, and consider lowering the LR or tightening gradient clipping."
    )
