"""InstabilityMonitor: early warning (``instability_risk``) from the loss and the gradient norm together."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from curvecast.forecasting import anomaly_messages as msg
from curvecast.forecasting.anomaly_detector import AnomalyDetector
from curvecast.forecasting.anomaly_event import Anomaly
from curvecast.forecasting.anomaly_stats import check_step, median, sigma_of_diffs

__all__ = ["InstabilityMonitor"]


class InstabilityMonitor:
    """Watches the loss and the pre-clip total gradient norm of each step and warns before a blow-up.

    It wraps one :class:`AnomalyDetector` per series (their events are passed through) and adds an
    ``instability_risk`` warning when at least ``min_precursors`` of these precursors hold at once:

    - **co-spike** (counts twice: the strong signal): a loss spike and a gradient-norm spike within
      ``co_spike_points`` points of each other (OLMo 2, BLOOM: gradient spikes lead loss spikes);
    - **gradient-norm growth**: the median gradient norm of the last 32 points is at least
      ``grad_growth`` times its lowest such median so far (Wortsman et al. 2023: norms grow before
      instabilities emerge);
    - **rising spike rate**: at least 3 loss or gradient spikes in the last ``window_points`` points,
      and more than in the window before;
    - **loss creeping up**: the loss detector's upward CUSUM is past half its alarm level;
    - **loss noise rising**: the noise of the last 16 loss differences is at least 3 times the
      noise of the last 128;
    - **stalled at high LR** (when the LR schedule is known): no 1% loss progress over
      ``window_points`` points while the LR is at least 80% of its peak.

    The warning is reported once per episode; it re-arms when no precursor holds.

    Args:
        lrs: the planned LR at every step ``0..N``, when known (passed to the loss detector).
        loss_detector: the detector for the loss (default ``AnomalyDetector("loss", lrs=lrs)``).
        grad_detector: the detector for the gradient norm (default: non-finite values and spikes only,
            since a slowly rising gradient norm is normal late in training).

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
        lrs: Sequence[float] | None = None,
        loss_detector: AnomalyDetector | None = None,
        grad_detector: AnomalyDetector | None = None,
        min_precursors: int = 2,
        co_spike_points: int = 3,
        grad_growth: float = 3.0,
        window_points: int = 200,
    ) -> None:
        if min_precursors < 1 or co_spike_points < 0 or window_points < 1:
            raise ValueError(
                "`min_precursors` and `window_points` must be >= 1 and `co_spike_points` >= 0, but got "
                f"{min_precursors}, {window_points}, {co_spike_points}"
            )
        if not grad_growth > 1.0:
            raise ValueError(f"`grad_growth` must be > 1, but got {grad_growth}")
        self.loss = loss_detector if loss_detector is not None else AnomalyDetector("loss", lrs=lrs)
        self.grad = (
            grad_detector if grad_detector is not None else AnomalyDetector("grad_norm", kinds=("nonfinite", "spike"))
        )
        self.min_precursors, self.co_spike_points = min_precursors, co_spike_points
        self.grad_growth, self.window_points = grad_growth, window_points
        self.n, self.last_step, self.armed = 0, None, True
        self.loss_spike_n, self.grad_spike_n = -(10**9), -(10**9)
        self.spike_ns: list[int] = []  # point indices of recent spikes, at most two windows back
        self.grad_low = math.inf

    def update(self, step: int, loss: float | None = None, grad_norm: float | None = None) -> list[Anomaly]:
        """Feed one step's loss and/or gradient norm; return the events of both series plus any warning."""
        step = check_step(step, self.last_step)
        self.last_step = step
        self.n += 1
        events: list[Anomaly] = []
        if loss is not None:
            events += self.loss.update(step, loss)
        if grad_norm is not None:
            events += self.grad.update(step, grad_norm)
        for e in events:
            if e.kind == "spike":
                self.spike_ns.append(self.n)
                if e.series == self.grad.series:
                    self.grad_spike_n = self.n
                else:
                    self.loss_spike_n = self.n
        cut = self.n - 2 * self.window_points
        while self.spike_ns and self.spike_ns[0] <= cut:
            self.spike_ns.pop(0)
        found = self._precursors(step)
        reasons = [r for r, _ in found]
        weight = sum(w for _, w in found)
        if not reasons:
            self.armed = True
        muted = self.loss.n <= self.loss.warmup_points or self.loss.n <= self.loss.mute_until
        if self.armed and weight >= self.min_precursors and not muted:
            self.armed = False
            value = math.nan if loss is None else float(loss)
            text = msg.instability_risk(step, reasons)
            events.append(Anomaly("instability_risk", step, "warning", text, self.loss.series, float(weight), value))
        return events

    def _precursors(self, step: int) -> list[tuple[str, int]]:
        """The precursors that hold now, each with its weight."""
        reasons: list[tuple[str, int]] = []
        if (
            abs(self.loss_spike_n - self.grad_spike_n) <= self.co_spike_points
            and self.n - max(self.loss_spike_n, self.grad_spike_n) <= self.co_spike_points
        ):
            reasons.append(("loss and gradient norm spiked together", 2))
        g = self.grad.recent
        if len(g) >= 16:
            level = median(g)
            self.grad_low = min(self.grad_low, level)
            if level - self.grad_low >= math.log(self.grad_growth) and self.grad.log_scale:
                reasons.append((f"gradient norm grew {math.exp(level - self.grad_low):.1f}x from its low", 1))
        recent = sum(1 for n in self.spike_ns if n > self.n - self.window_points)
        if recent >= 3 and recent > len(self.spike_ns) - recent:
            reasons.append((f"{recent} spikes in the last {self.window_points} points", 1))
        det = self.loss
        if det.cusum > det.drift_h / 2:
            reasons.append(("loss creeping up", 1))
        if len(det.diffs) >= 64 and det.sigma > 0:
            short = sigma_of_diffs(det.diffs[-16:])
            if short >= 3.0 * det.sigma:
                reasons.append((f"loss noise {short / det.sigma:.1f}x its usual level", 1))
        sched = det.schedule
        if (
            sched is not None
            and det.anchor_step is not None
            and det.n - det.anchor_n >= self.window_points
            and sched.fraction_of_peak(step) >= 0.8
        ):
            reasons.append((f"loss stalled since step {det.anchor_step} at high LR", 1))
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
            "loss_spike_n": self.loss_spike_n,
            "grad_spike_n": self.grad_spike_n,
            "spike_ns": list(self.spike_ns),
            "grad_low": self.grad_low,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`."""
        self.loss.load_state_dict(state["loss"])
        self.grad.load_state_dict(state["grad"])
        self.n, self.last_step, self.armed = int(state["n"]), state["last_step"], bool(state["armed"])
        self.loss_spike_n, self.grad_spike_n = int(state["loss_spike_n"]), int(state["grad_spike_n"])
        self.spike_ns = [int(n) for n in state["spike_ns"]]
        self.grad_low = float(state["grad_low"])
