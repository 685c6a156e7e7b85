"""ForecastStopRule: when a forecast says a run should stop, and why (pure logic: reports in, a decision out).

The rule knows nothing of Lightning, so benchmarks can replay finished curves through it. ``ForecastEarlyStopping`` is
the thin actuator that feeds it the live reports.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Literal

from curvecast.forecasting.report import Report
from curvecast.forecasting.stop_request import StopReason, StopRequest
from curvecast.series import TRAIN_LOSS
from curvecast.state_checks import checked_mapping, checked_whole

__all__ = ["ForecastStopRule", "StopReason", "StopRequest"]

_STATE_VERSION = 1


class ForecastStopRule:
    """Decide from forecasts whether a run should stop.

    A run stops when

    * the monitored series became non-finite, or a divergence was confirmed (a ``"critical"`` anomaly of that kind);
    * with a target: the forecast's chance of reaching it at the horizon stays below ``prob_threshold`` on ``patience``
      consecutive checks;
    * without a target: the improvement the point forecast still expects by the horizon stays below ``min_delta`` on
      ``patience`` consecutive checks.

    The forecast-based reasons wait until ``min_progress`` of the run is done. While a known LR drop has not got far
    (the LR is still above ``decay_started`` times its peak so far, or a step schedule still has a drop to come)
    the prefix cannot show how much the drop will
    bring, and forecasts are too sure of it: the target check then reads the forecast with its interval widened
    ``pre_decay_scale`` times (a run far out of reach is still stopped before its decay; one within the widened
    interval waits for the decay to show), and the check without a target is held. When the LR schedule is unknown
    (ReduceLROnPlateau drops the LR exactly when the curve flattens) a drop may come at any time: the forecaster then
    widens its interval for a decay the prefix does not show, and the target check reads it widened
    ``unknown_lr_scale`` times more and needs ``unknown_lr_extra_patience`` more consecutive checks (a decay late in
    the run, where the forecaster's widening is smallest, must show within them; a cyclic LR's bump is followed by a
    fall its laws do not foresee); the check without a target reads the point forecast alone, which knows no unseen
    decay, and stays held (``assume_constant_lr`` lifts both). A held or hopeful check resets the count; a report
    without a usable forecast leaves it as it is.

    Args:
        target: the value to reach; None takes the report's target (and without one uses ``min_delta``).
        mode: ``"min"``: the target is reached from above (a loss); ``"max"``: from below (an accuracy); None takes
            the report's mode. A forecast made for the other direction says nothing of this one: with such forecasts
            only a divergence or a non-finite value stops the run.
        prob_threshold: stop when the chance of reaching the target is below this.
        patience: consecutive checks a forecast-based reason must hold.
        min_delta: without a target, the smallest improvement still worth the remaining steps.
        min_delta_mode: ``"abs"``: ``min_delta`` in units of the metric; ``"rel"``: a fraction of its current value.
        min_progress: fraction of the horizon before a forecast-based stop.
        decay_started: the LR at or below this fraction of its peak counts as a decay well under way.
        pre_decay_scale: before that, the target check widens the forecast's interval this many times; None holds
            the stop until the decay is well under way.
        check_finite: stop on a non-finite value.
        stop_on_divergence: stop on a confirmed divergence.
        assume_constant_lr: treat an unknown LR schedule as constant: no hold, no extra patience.
        unknown_lr_extra_patience: with the LR schedule unknown, the target check needs this many consecutive checks
            on top of ``patience``; None holds every forecast-based stop instead.
        unknown_lr_scale: with the LR schedule unknown, the target check widens the forecast's interval this many
            times (1: as the forecaster sizes it). At 2, the replayed runs of ``benchmarks/early_stopping.py`` keep
            no wrong stop (at 1, two AlgoPerf runs under a cyclic LR with no LR column were stopped at 86-90% of
            their budget, on a fall after an LR bump forecast to stop there, and reached their target at 98-100%).
        early_scale: before ``early_until`` of the run, the target check reads the forecast's interval widened at
            least this many times. From the first quarter of a run the 80% intervals held 45-68% of the live runs'
            finals (``benchmarks/calibrate.py``), and a slow start that speeds up lies far outside them: an MLP under
            AdamW at a constant 5e-4 was stopped at step 303 of 960 on a 1.3% chance, and reached the target (0.1)
            by step 680. The replayed runs of ``benchmarks/early_stopping.py`` are stopped as before.
        early_until: the fraction of the run ``early_scale`` holds for.

    Example::

        >>> rule = ForecastStopRule(target=1.0, patience=1)
        >>> rule.update(Report(step=10, monitor="loss")) is None  # no forecast yet: nothing to decide on
        True
    """

    def __init__(
        self,
        target: float | None = None,
        mode: Literal["min", "max"] | None = None,
        prob_threshold: float = 0.05,
        patience: int = 3,
        min_delta: float = 0.0,
        min_delta_mode: Literal["abs", "rel"] = "abs",
        min_progress: float = 0.1,
        decay_started: float = 0.5,
        pre_decay_scale: float | None = 4.0,
        check_finite: bool = True,
        stop_on_divergence: bool = True,
        assume_constant_lr: bool = False,
        unknown_lr_extra_patience: int | None = 2,
        unknown_lr_scale: float = 2.0,
        early_scale: float = 2.0,
        early_until: float = 0.5,
    ) -> None:
        if mode not in ("min", "max", None):
            raise ValueError(f"Expected `mode` to be one of ('min', 'max', None), but got {mode!r}")
        if not 0.0 < prob_threshold < 1.0:
            raise ValueError(f"Expected `prob_threshold` to lie in (0, 1), but got {prob_threshold}")
        if patience < 1:
            raise ValueError(f"Expected `patience` to be a positive int, but got {patience}")
        if not min_delta >= 0.0:
            raise ValueError(f"Expected `min_delta` to be non-negative, but got {min_delta}")
        if min_delta_mode not in ("abs", "rel"):
            raise ValueError(f"Expected `min_delta_mode` to be one of ('abs', 'rel'), but got {min_delta_mode!r}")
        if not 0.0 <= min_progress < 1.0:
            raise ValueError(f"Expected `min_progress` to lie in [0, 1), but got {min_progress}")
        if not 0.0 < decay_started <= 1.0:
            raise ValueError(f"Expected `decay_started` to lie in (0, 1], but got {decay_started}")
        if pre_decay_scale is not None and not pre_decay_scale >= 1.0:
            raise ValueError(f"Expected `pre_decay_scale` to be >= 1 or None, but got {pre_decay_scale}")
        if unknown_lr_extra_patience is not None and unknown_lr_extra_patience < 0:
            raise ValueError(
                f"Expected `unknown_lr_extra_patience` to be >= 0 or None, but got {unknown_lr_extra_patience}"
            )
        if not unknown_lr_scale >= 1.0:
            raise ValueError(f"Expected `unknown_lr_scale` to be >= 1, but got {unknown_lr_scale}")
        if not early_scale >= 1.0:
            raise ValueError(f"Expected `early_scale` to be >= 1, but got {early_scale}")
        if not 0.0 <= early_until <= 1.0:
            raise ValueError(f"Expected `early_until` to lie in [0, 1], but got {early_until}")
        if target is not None and not math.isfinite(target):
            raise ValueError(f"Expected `target` to be a finite float or None, but got {target}")
        self.target = target
        self.mode = mode
        self.prob_threshold = prob_threshold
        self.patience = patience
        self.min_delta = min_delta
        self.min_delta_mode = min_delta_mode
        self.min_progress = min_progress
        self.decay_started = decay_started
        self.pre_decay_scale = pre_decay_scale
        self.check_finite = check_finite
        self.stop_on_divergence = stop_on_divergence
        self.assume_constant_lr = assume_constant_lr
        self.unknown_lr_extra_patience = unknown_lr_extra_patience
        self.unknown_lr_scale = unknown_lr_scale
        self.early_scale = early_scale
        self.early_until = early_until
        self.wait = 0  # consecutive checks on which the forecast-based reason held
        self.held_by_lr_drop = False

    def update(self, report: Report) -> StopRequest | None:
        """Read one report; return a :class:`StopRequest` when the run should stop, else None.

        The report's ``lr`` and ``peak_lr`` (the current LR and the highest so far) tell whether a coming drop has
        begun.
        """
        request = self._anomaly_stop(report)
        if request is not None:
            return request
        forecast = report.forecast
        if forecast is None or not forecast.ok or report.horizon is None:
            return None
        if forecast.mode != self._mode(report):
            # A forecast of a falling metric reads a rising one (accuracy, reward) wrong-way round, and a stop on it
            # would end healthy runs. Only divergence and non-finite values stop them.
            return None
        if report.step < self.min_progress * report.horizon or _saved(report) == 0:
            return None  # too early to judge, or the run ends here anyway: a stop would save nothing
        target = self.target if self.target is not None else report.target
        self.held_by_lr_drop = self._lr_drop_could_change(report, with_target=target is not None)
        before_decay = self.held_by_lr_drop and report.lr_schedule_known and target is not None
        if before_decay and self.pre_decay_scale is not None:
            self.held_by_lr_drop = False
            early = self.early_scale if report.step < self.early_until * report.horizon else 1.0
            return self._target_check(report, target, max(self.pre_decay_scale, early), _WIDENED)
        if self.held_by_lr_drop:
            self._reset()
            return None
        if target is not None:
            widen, why = (self.unknown_lr_scale, _WIDENED_UNKNOWN) if self._schedule_unknown(report) else (1.0, "")
            if report.step < self.early_until * report.horizon and self.early_scale > widen:
                widen, why = self.early_scale, _WIDENED_EARLY
            return self._target_check(report, target, widen, why)
        return self._improvement_check(report)

    # -- reasons --------------------------------------------------------------------------------------------------

    def _anomaly_stop(self, report: Report) -> StopRequest | None:
        for anomaly in report.anomalies:
            series = getattr(anomaly, "series", report.monitor)
            if anomaly.severity != "critical":
                continue
            if anomaly.kind == "nonfinite" and self.check_finite and series in (report.monitor, TRAIN_LOSS):
                # A NaN training loss has poisoned the weights, whichever metric is monitored.
                reason = StopReason.NON_FINITE
            elif anomaly.kind == "divergence" and self.stop_on_divergence and series == report.monitor:
                reason = StopReason.DIVERGENCE
            else:
                continue
            message = f"Stopped at step {report.stop_step}: {anomaly.message}"
            return StopRequest(reason, report.stop_step, message)
        return None

    def _schedule_unknown(self, report: Report) -> bool:
        return not report.lr_schedule_known and not self.assume_constant_lr

    def _mode(self, report: Report) -> str:
        return self.mode or report.mode

    def _lr_drop_could_change(self, report: Report, with_target: bool = True) -> bool:
        if self._schedule_unknown(report):
            # ReduceLROnPlateau and the like: a drop may come exactly when the curve flattens. The forecast's interval
            # allows for it (the target check), its point forecast does not (the check without a target).
            return self.unknown_lr_extra_patience is None or not with_target
        if not report.lr_drop_ahead:
            return False
        if report.schedule is not None and report.schedule.step_drop_ahead(report.step):
            # A step schedule's next drop: what it brings, the drops behind show in part only (StepLR(400, 0.3) over
            # 1500 steps, stopped at step 700 on a 2% chance, reached its target after its drops at 800 and 1200).
            return True
        lr, peak_lr = report.lr, report.peak_lr
        if lr is None or peak_lr is None or not peak_lr > 0:
            return True  # cannot tell whether the decay has begun: the safe answer is to wait
        return lr > self.decay_started * peak_lr

    def _target_check(self, report: Report, target: float, widen: float = 1.0, why: str = "") -> StopRequest | None:
        """The chance of reaching ``target``, read with the forecast's interval ``widen`` times as wide (``why``:
        what the message says of it)."""
        forecast = report.forecast
        if widen != 1.0:
            forecast = replace(forecast, log_scale=forecast.log_scale * widen, worse_scale=forecast.worse_scale * widen)
        chance = forecast.prob_beyond(target)  # the forecast's mode is the rule's (checked in update)
        if not math.isfinite(chance):
            return None
        if chance >= self.prob_threshold:
            self._reset()
            return None
        needed = self.patience + (self.unknown_lr_extra_patience or 0) * self._schedule_unknown(report)
        if not self._held_long_enough(needed):
            return None
        lo, hi = forecast.interval(0.8)
        if report.reached_at is None:
            outlook = f"a {chance:.1%} chance of reaching the target {target:.4g} by step {report.horizon}"
            fix = "To reach it, try another LR or schedule, a bigger model or more steps"
        else:  # reached, and gone back: the forecast is of where the run ends, not of whether it got there
            outlook = (f"a {chance:.1%} chance of being at the target {target:.4g} at step {report.horizon}, which it "
                       f"reached at step {report.reached_at} and has moved away from since")  # fmt: skip
            fix = f"The checkpoint of its best {report.monitor} holds the target (`ModelCheckpoint(monitor=...)`)"
        message = (
            f"Stopped at step {report.stop_step} of {report.horizon}: the forecast gives {report.monitor} {outlook} "
            f"(forecast {forecast.final:.4g}, 80% interval {lo:.4g} to {hi:.4g}{why if widen != 1.0 else ''}), below "
            f"{self.prob_threshold:.0%} on {self.wait} consecutive checks; {_saved(report)} steps saved. {fix}; to let "
            "such runs go on, lower `prob_threshold` or raise `patience`."
        )
        return StopRequest(StopReason.TARGET_OUT_OF_REACH, report.stop_step, message)

    def _improvement_check(self, report: Report) -> StopRequest | None:
        forecast = report.forecast
        current = float(forecast.predict([report.step])[0])
        final = float(forecast.final)
        if not (math.isfinite(current) and math.isfinite(final)):
            return None
        gain = current - final if self._mode(report) == "min" else final - current
        needed = self.min_delta * abs(current) if self.min_delta_mode == "rel" else self.min_delta
        if gain >= needed:
            self._reset()
            return None
        if not self._held_long_enough(self.patience):
            return None
        message = (
            f"Stopped at step {report.stop_step} of {report.horizon}: the forecast expects {report.monitor} to improve "
            f"by only {gain:.4g} more (from {current:.4g} to {final:.4g} at step {report.horizon}), less than the "
            f"`min_delta` of {needed:.4g}, on {self.wait} consecutive checks; {_saved(report)} steps saved. If the run "
            "should go on, decay the LR (a cooldown often brings a few percent) or lower `min_delta`."
        )
        return StopRequest(StopReason.NO_IMPROVEMENT_EXPECTED, report.stop_step, message)

    def _reset(self) -> None:
        self.wait = 0

    def _held_long_enough(self, checks: int) -> bool:
        """Count one more check on which the reason held; whether it has now held on ``checks`` in a row."""
        self.wait += 1
        return self.wait >= checks

    # -- checkpoint state -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the count saved by :meth:`state_dict` (none saved: 0); a damaged one raises ``TypeError`` or
        ``ValueError`` naming the field, and changes nothing."""
        state = checked_mapping("the ForecastStopRule state", state)
        version = state.get("version", _STATE_VERSION)
        if isinstance(version, bool) or version != _STATE_VERSION:
            raise ValueError(f"Expected a ForecastStopRule state of version {_STATE_VERSION}, but got {version!r}")
        self.wait = checked_whole("`ForecastStopRule.wait`", state.get("wait", 0), low=0)


_WIDENED = ", widened for the LR decay still to come"
_WIDENED_UNKNOWN = ", widened: the LR schedule is unknown"
_WIDENED_EARLY = ", widened this early in the run"


def _saved(report: Report) -> int:
    """The steps a stop leaves of ``horizon``: after ``run_step`` (0-based, the last step taken) where the report
    knows it, else after ``stop_step``. A validation point's step counts the steps taken (the weights after k
    updates) and so lies one past the last index: 70 of 80 saves 10, not 9."""
    last = report.stop_step if report.run_step is None else int(report.run_step)
    return max(int(report.horizon) - last - 1, 0)
