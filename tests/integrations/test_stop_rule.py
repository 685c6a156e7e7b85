"""ForecastStopRule on real forecasts of synthetic curves (no Trainer)."""

from __future__ import annotations

import numpy as np
import pytest

from curvecast.forecasting import Forecaster, Report
from curvecast.forecasting.anomalies import Anomaly
from curvecast.forecasting.schedule import LRSchedule
from curvecast.integrations import ForecastStopRule, StopReason

HORIZON = 2000
_rng = np.random.default_rng(0)
STEPS = np.arange(1, 601)
VALUES = (2.0 + 3.0 * STEPS**-0.5) * np.exp(_rng.normal(0.0, 0.01, len(STEPS)))
# A constant, known LR: the forecast is schedule-aware and confident (final near 2.07, 80% band about +-3%).
FORECAST = Forecaster().fit(STEPS, VALUES, horizon=HORIZON, lrs=np.full(HORIZON + 1, 1e-3))


def _report(target=None, step=600, **kwargs) -> Report:
    kwargs.setdefault("lr_schedule_known", True)
    return Report(step=step, monitor="loss", horizon=HORIZON, forecast=FORECAST, target=target, **kwargs)


def test_out_of_reach_needs_patience_consecutive_checks():
    rule = ForecastStopRule(patience=3)
    assert rule.update(_report(target=1.5)) is None
    assert rule.update(_report(target=1.5)) is None
    request = rule.update(_report(target=1.5))
    assert request.reason is StopReason.TARGET_OUT_OF_REACH
    assert request.step == 600
    assert "Stopped at step 600 of 2000" in request.message
    assert "1399 steps saved" in request.message  # steps 0..600 were taken: 601 of 2000


def test_a_stop_takes_effect_at_the_runs_step_not_the_forecasts():
    """A forecast from the worker arrives after the point it was made from: the stop, and the steps it saves, are
    those of the step the run is at."""
    rule = ForecastStopRule(patience=1)
    request = rule.update(_report(target=1.5, run_step=604))
    assert request.step == 604
    assert "Stopped at step 604 of 2000" in request.message
    assert "1395 steps saved" in request.message


def test_a_validation_monitors_stop_counts_the_steps_saved_from_the_last_step_taken():
    # A validation point's step is the number of steps taken (600: steps 0..599 were run); the run is at index 599.
    request = ForecastStopRule(patience=1).update(_report(target=1.5, run_step=599))
    assert "Stopped at step 600 of 2000" in request.message
    assert "1400 steps saved" in request.message


def test_a_hopeful_check_resets_the_count():
    rule = ForecastStopRule(patience=2)
    assert rule.update(_report(target=1.5)) is None
    assert rule.update(_report(target=2.5)) is None  # reachable: the count starts over
    assert rule.wait == 0
    assert rule.update(_report(target=1.5)) is None
    assert rule.update(_report(target=1.5)) is not None


def test_no_stop_before_min_progress_or_without_forecast():
    rule = ForecastStopRule(patience=1, min_progress=0.5)
    assert rule.update(_report(target=1.5)) is None  # step 600 < 1000
    assert rule.update(Report(step=1500, monitor="loss", horizon=HORIZON, target=1.5)) is None


def test_mode_max_is_not_stopped_on_a_target_the_forecast_puts_out_of_reach():
    rule = ForecastStopRule(patience=1, mode="max")
    assert rule.update(_report(target=1.5)) is None
    assert rule.update(_report(target=3.0)) is None  # a forecast stop needs a forecaster that models rising metrics


@pytest.mark.parametrize(
    ("known", "lr", "peak", "held"),
    [(True, None, None, True), (True, 0.06, 0.1, True), (True, 0.05, 0.1, False)],
)
def test_an_lr_drop_ahead_holds_forecast_stops_until_it_begins_when_asked(known, lr, peak, held):
    rule = ForecastStopRule(patience=1, pre_decay_scale=None)
    report = _report(target=1.5, lr_drop_ahead=True, lr_schedule_known=known, lr=lr, peak_lr=peak)
    request = rule.update(report)
    assert rule.held_by_lr_drop is held
    assert (request is None) is held


@pytest.mark.parametrize(("sigmas", "stops"), [(16.0, True), (2.5, False)])
def test_before_a_decay_the_target_check_reads_a_widened_interval(sigmas, stops):
    # A target `sigmas` predictive sds below the forecast: out of reach at 2.5 sds, and at 16; four times as wide, only
    # the target 16 sds away stays out of reach.
    target = FORECAST.final * np.exp(-sigmas * FORECAST.log_scale)
    assert ForecastStopRule(patience=1, early_scale=1.0).update(_report(target=target)) is not None
    rule = ForecastStopRule(patience=1, pre_decay_scale=4.0)
    request = rule.update(_report(target=target, lr_drop_ahead=True, lr=0.1, peak_lr=0.1))
    assert (request is not None) is stops
    assert not rule.held_by_lr_drop
    if stops:
        assert "widened for the LR decay still to come" in request.message
    no_target = ForecastStopRule(patience=1, min_delta=1.0)  # the check without a target stays held
    assert no_target.update(_report(lr_drop_ahead=True, lr=0.1, peak_lr=0.1)) is None
    assert no_target.held_by_lr_drop


def _step_lr(drops: tuple[int, ...], gamma: float = 0.3) -> LRSchedule:
    """StepLR over the run: the LR times ``gamma`` at each of ``drops``."""
    lrs = np.full(HORIZON + 1, 0.1)
    for step in drops:
        lrs[step:] *= gamma
    return LRSchedule(lrs)


@pytest.mark.parametrize(("drops", "held"), [((400, 800, 1200), True), ((400,), False)])
def test_a_step_schedule_with_a_drop_to_come_reads_the_widened_interval_after_its_first(drops, held):
    # At step 600 the LR is at 0.3 of its peak: a decay under way for a cosine. A step schedule's drops at 800 and
    # 1200 are still to come, and what they bring the one behind shows in part only: the widened interval then.
    target = FORECAST.final * np.exp(-2.5 * FORECAST.log_scale)  # out of reach, but not four intervals away
    kwargs = {"lr_drop_ahead": True, "lr": 0.03, "peak_lr": 0.1, "schedule": _step_lr(drops)}
    rule = ForecastStopRule(patience=1, pre_decay_scale=4.0, early_scale=1.0)  # the early widening: its own test
    request = rule.update(_report(target=target, **kwargs))
    assert (request is None) is held
    no_target = ForecastStopRule(patience=1, min_delta=1.0)
    no_target.update(_report(**kwargs))
    assert no_target.held_by_lr_drop is held


def test_an_unknown_schedule_needs_extra_checks_to_stop_on_a_target():
    report = _report(target=1.5, lr_schedule_known=False)
    rule = ForecastStopRule(patience=2)  # two extra checks by default: four in all
    for wait in (1, 2, 3):
        assert rule.update(report) is None
        assert not rule.held_by_lr_drop
        assert rule.wait == wait
    request = rule.update(report)
    assert request.reason is StopReason.TARGET_OUT_OF_REACH
    assert "on 4 consecutive checks" in request.message
    assert ForecastStopRule(patience=2, unknown_lr_extra_patience=0).update(report) is None
    assert ForecastStopRule(patience=1, unknown_lr_extra_patience=0).update(report) is not None
    assert ForecastStopRule(patience=1, assume_constant_lr=True).update(report) is not None


@pytest.mark.parametrize(("sigmas", "stops"), [(5.0, True), (2.0, False)])
def test_an_unknown_schedule_reads_the_interval_widened(sigmas, stops):
    # A target `sigmas` predictive sds below the forecast: out of reach as the forecaster sizes it either way; twice
    # as wide (a cyclic LR's next fall, a decay the prefix does not show), only the target 5 sds away stays so.
    target = FORECAST.final * np.exp(-sigmas * FORECAST.log_scale)
    report = _report(target=target, lr_schedule_known=False)
    as_sized = ForecastStopRule(patience=1, unknown_lr_extra_patience=0, unknown_lr_scale=1.0, early_scale=1.0)
    assert as_sized.update(report) is not None
    rule = ForecastStopRule(patience=1, unknown_lr_extra_patience=0)
    request = rule.update(report)
    assert (request is not None) is stops
    if stops:
        assert "widened: the LR schedule is unknown" in request.message


@pytest.mark.parametrize(("step", "stops"), [(600, False), (1000, True)])
def test_in_the_first_half_of_a_run_the_target_check_reads_the_interval_widened(step, stops):
    # A target 2.5 predictive sds below the forecast, with no LR drop ahead: out of reach as the forecaster sizes it,
    # and so read from half the run on; before, twice as wide (a slow start that speeds up lies far outside the
    # early intervals), it is not.
    target = FORECAST.final * np.exp(-2.5 * FORECAST.log_scale)
    request = ForecastStopRule(patience=1).update(_report(target=target, step=step))
    assert (request is not None) is stops
    assert ForecastStopRule(patience=1, early_scale=1.0).update(_report(target=target, step=step)) is not None


def test_an_unknown_schedule_holds_when_asked_or_without_a_target():
    held = ForecastStopRule(patience=1, unknown_lr_extra_patience=None)
    for _ in range(5):
        assert held.update(_report(target=1.5, lr_schedule_known=False)) is None
        assert held.held_by_lr_drop
        assert held.wait == 0
    # Without a target the point forecast decides, and it knows no unseen decay: held whatever the extra patience.
    no_target = ForecastStopRule(patience=1, min_delta=1.0)
    for _ in range(5):
        assert no_target.update(_report(lr_schedule_known=False)) is None
        assert no_target.held_by_lr_drop
    assert (
        ForecastStopRule(patience=1, min_delta=1.0, assume_constant_lr=True)
        .update(_report(lr_schedule_known=False))
        .reason
        is StopReason.NO_IMPROVEMENT_EXPECTED
    )


def test_a_known_schedule_needs_no_extra_checks():
    request = ForecastStopRule(patience=1, unknown_lr_extra_patience=5).update(_report(target=1.5))
    assert request.reason is StopReason.TARGET_OUT_OF_REACH


def test_non_finite_and_confirmed_divergence_stop_at_once_even_before_min_progress():
    rule = ForecastStopRule(min_progress=0.9)
    nan = Anomaly("nonfinite", 50, "critical", "loss became nan at step 50.", value=float("nan"))
    assert rule.update(_report(step=60, anomalies=(nan,))).reason is StopReason.NON_FINITE
    warning = Anomaly("divergence", 70, "warning", "climbing")
    assert rule.update(_report(step=80, anomalies=(warning,))) is None  # not confirmed yet
    confirmed = Anomaly("divergence", 90, "critical", "diverged")
    assert rule.update(_report(step=95, anomalies=(confirmed,))).reason is StopReason.DIVERGENCE
    other_series = Anomaly("nonfinite", 90, "critical", "grad_norm became inf", series="grad_norm")
    assert rule.update(_report(step=99, anomalies=(other_series,))) is None


def test_min_delta_without_target_absolute_and_relative():
    gain = float(FORECAST.predict([600])[0] - FORECAST.final)
    assert 0 < gain < 0.2
    assert ForecastStopRule(patience=1, min_delta=gain / 2).update(_report()) is None
    assert ForecastStopRule(patience=1, min_delta=gain * 2).update(_report()).reason is (
        StopReason.NO_IMPROVEMENT_EXPECTED
    )
    assert ForecastStopRule(patience=1, min_delta=0.5, min_delta_mode="rel").update(_report()) is not None


def test_state_round_trip():
    rule = ForecastStopRule(patience=5)
    rule.update(_report(target=1.5))
    restored = ForecastStopRule(patience=5)
    restored.load_state_dict(rule.state_dict())
    assert restored.wait == rule.wait == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "up"}, r"Expected `mode` to be one of \('min', 'max', None\), but got 'up'"),
        ({"prob_threshold": 0.0}, "Expected `prob_threshold` to lie in"),
        ({"patience": 0}, "Expected `patience` to be a positive int"),
        ({"min_delta": -1.0}, "Expected `min_delta` to be non-negative"),
        ({"min_delta_mode": "pct"}, "Expected `min_delta_mode` to be one of"),
        ({"min_progress": 1.0}, "Expected `min_progress` to lie in"),
        ({"decay_started": 0.0}, "Expected `decay_started` to lie in"),
        ({"pre_decay_scale": 0.5}, r"Expected `pre_decay_scale` to be >= 1 or None, but got 0.5"),
        ({"target": float("nan")}, "Expected `target` to be a finite float or None"),
        ({"unknown_lr_extra_patience": -1}, "Expected `unknown_lr_extra_patience` to be >= 0 or None"),
        ({"unknown_lr_scale": 0.5}, r"Expected `unknown_lr_scale` to be >= 1, but got 0.5"),
        ({"early_scale": 0.5}, r"Expected `early_scale` to be >= 1, but got 0.5"),
        ({"early_until": 1.5}, r"Expected `early_until` to lie in \[0, 1\], but got 1.5"),
    ],
)
def test_rule_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ForecastStopRule(**kwargs)


def test_decisions_and_alerts_pickle():
    import pickle

    from curvecast.integrations import Alert, StopReason, StopRequest

    request = StopRequest(StopReason.DIVERGENCE, 120, "the loss diverged")
    alert = Alert("early_stop", 120, "warning", request.message, source="early_stopping")
    assert pickle.loads(pickle.dumps(request)) == request
    assert pickle.loads(pickle.dumps(alert)) == alert


def test_a_rising_metric_is_never_stopped_on_a_forecast():
    """The forecaster models a falling metric: for mode="max" only anomalies stop a run (a false stop is the worst)."""
    from curvecast.forecasting import Forecaster
    from curvecast.integrations import ForecastStopRule

    steps = np.arange(1, 200)
    accuracy = 0.9 - 0.5 / (1.0 + steps / 20.0)  # rising: forecast falling, and "no improvement" or "unreachable"
    forecast = Forecaster().fit(steps, accuracy, horizon=400)
    for target in (None, 0.95):
        rule = ForecastStopRule(target=target, mode="max", patience=1, assume_constant_lr=True)
        report = Report(step=199, monitor="val_acc", horizon=400, forecast=forecast, lr_schedule_known=True)
        assert all(rule.update(report) is None for _ in range(5))


def test_a_rising_metric_forecast_as_rising_is_stopped_when_out_of_reach():
    import inspect

    if "mode" not in inspect.signature(Forecaster.fit).parameters:
        pytest.skip("the forecaster models falling metrics only")
    steps = np.arange(1, 200)
    accuracy = 0.9 - 0.5 / (1.0 + steps / 20.0)  # rising towards 0.9
    forecast = Forecaster().fit(steps, accuracy, horizon=400, mode="max", bounds=(0.0, 1.0))
    for target, stops in ((0.99, True), (0.85, False)):
        rule = ForecastStopRule(target=target, mode="max", patience=1, assume_constant_lr=True)
        report = Report(step=199, monitor="val_acc", horizon=400, forecast=forecast, lr_schedule_known=True)
        assert (rule.update(report) is not None) is stops


def test_a_target_reached_and_left_is_said_so():
    """A validation loss that reached its target, then rose as the model overfit: its stop said the run had a 0.1%
    chance "of reaching" a target it had reached 800 steps before."""
    request = ForecastStopRule(patience=1).update(_report(target=1.5, reached_at=300))
    assert request.reason is StopReason.TARGET_OUT_OF_REACH
    assert "chance of being at the target 1.5 at step 2000, which it reached at step 300" in request.message
    assert "chance of reaching" not in request.message
    assert "ModelCheckpoint(monitor=...)" in request.message


def test_no_stop_at_the_last_step_of_the_run():
    rule = ForecastStopRule(patience=1)
    assert rule.update(_report(target=1.5, step=HORIZON - 1)) is None
    assert rule.update(_report(target=1.5, step=HORIZON - 2)) is not None  # one step left to save
