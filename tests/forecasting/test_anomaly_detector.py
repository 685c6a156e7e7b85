"""AnomalyDetector and detect_anomalies: behaviour tables on seeded synthetic curves, state, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curvecast.forecasting import Anomaly, AnomalyDetector, DetectorSettings, detect_anomalies
from curvecast.forecasting.anomalies import DEFAULT_KINDS, KINDS
from curvecast.forecasting.anomalies.detector import CHECKS

N = 1500
LOSS_KINDS = ("nonfinite", "spike", "divergence")  # plateau has its own tests


def power_law(n: int = N, sigma: float = 0.03, seed: int = 0, tau: float = 50.0) -> np.ndarray:
    """A loss curve: a power law that falls steeply at first, with multiplicative noise."""
    t = np.arange(n)
    noise = np.random.default_rng(seed).standard_normal(n)
    return (2.0 + 8.0 * (1.0 + t / tau) ** -0.6) * np.exp(sigma * noise)


def run(values: np.ndarray, **kwargs: object) -> list[Anomaly]:
    return detect_anomalies(np.arange(len(values)), values, **kwargs)


def kinds_at(events: list[Anomaly]) -> list[tuple[str, int, str]]:
    return [(e.kind, e.step, e.severity) for e in events]


def with_spike(at: int, factor: float, seed: int = 0, sigma: float = 0.03) -> np.ndarray:
    v = power_law(seed=seed, sigma=sigma)
    v[at] *= factor
    return v


def with_climb(start: int, rate: float = 0.01, seed: int = 0) -> np.ndarray:
    v = power_law(seed=seed)
    t = np.arange(N)
    return v * np.exp(np.clip(t - start, 0, None) * math.log1p(rate))


def with_nan(at: int) -> np.ndarray:
    v = power_law()
    v[at:] = np.nan
    return v


# name, curve, expected (kind, step, severity) events for the loss kinds
BEHAVIOUR = [
    ("clean, seed 0", power_law(seed=0), []),
    ("clean, seed 1", power_law(seed=1), []),
    ("clean, heavy noise", power_law(sigma=0.1, seed=2), []),
    ("steep early descent", power_law(sigma=0.01, tau=3.0), []),
    ("constant", np.full(N, 2.5), []),
    ("small spike", with_spike(800, 1.1, sigma=0.01), [("spike", 800, "info")]),
    ("big spike", with_spike(800, 2.0), [("spike", 800, "warning")]),
    ("NaN tail", with_nan(1000), [("nonfinite", 1000, "critical")]),
    # ~6 noise units: below the immediate threshold, a spike once the next value is back at the level.
    ("recovering one-step jump", with_spike(800, 1.07, sigma=0.01), [("spike", 800, "info")]),
    ("level shift of the same size", power_law(sigma=0.01) * np.where(np.arange(N) >= 800, 1.06, 1.0), []),
]


@pytest.mark.parametrize(("name", "curve", "expected"), BEHAVIOUR, ids=[b[0] for b in BEHAVIOUR])
def test_behaviour_table(name: str, curve: np.ndarray, expected: list[tuple[str, int, str]]) -> None:
    assert kinds_at(run(curve, kinds=LOSS_KINDS)) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_caught_before_loss_rises_20_percent(seed: int) -> None:
    start = 1000
    events = run(with_climb(start, seed=seed), kinds=LOSS_KINDS)
    div = [e for e in events if e.kind == "divergence"]
    assert div, "no divergence reported"
    assert start < div[0].step < start + math.log(1.2) / math.log(1.01)
    # The climb never recovers: the divergence is confirmed (critical) later on.
    assert any(e.severity == "critical" for e in div)
    assert not [e for e in events if e.step < start]


def test_nonfinite_reported_at_its_step_and_once_per_run() -> None:
    v = power_law()
    v[[300, 301, 302]] = [np.nan, np.inf, np.nan]
    v[900] = -np.inf
    events = run(v, kinds=LOSS_KINDS)
    assert kinds_at(events) == [("nonfinite", 300, "critical"), ("nonfinite", 900, "critical")]
    assert math.isnan(events[0].value)


def test_lr_restart_with_known_schedule_is_not_a_spike() -> None:
    # Cosine cycles restarting every 500 steps: the loss jumps at each restart, then falls again.
    t = np.arange(N)
    lrs = 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * (t % 500) / 500))
    bump = np.where(t >= 500, 0.5 * np.exp(-(t % 500) / 30.0), 0.0)  # the climb after each restart
    v = (2.0 + 3.0 / (1 + t / 100) + bump) * np.exp(0.01 * np.random.default_rng(3).standard_normal(N))
    unaware = run(v, kinds=LOSS_KINDS)
    aware = run(v, kinds=LOSS_KINDS, lrs=lrs.tolist())
    assert {e.step for e in unaware if e.kind == "spike"} >= {500, 1000}
    assert aware == []


def test_plateau_reported_once_and_not_when_an_lr_drop_lies_ahead() -> None:
    t = np.arange(2000)
    v = np.where(t < 400, 4.0 - 2.0 * t / 400, 2.0) * np.exp(0.005 * np.random.default_rng(4).standard_normal(2000))
    events = [e for e in run(v) if e.kind == "plateau"]
    assert len(events) == 1
    assert events[0].severity == "info"
    assert 400 < events[0].step < 1000
    lrs = np.where(t < 1500, 1.0, 0.1).tolist()  # a step decay ahead may still break the plateau
    assert [e for e in run(v, lrs=lrs) if e.kind == "plateau"] == []


def test_slowdown_on_throughput() -> None:
    t = np.arange(1200)
    thr = np.where(t < 400, 1000.0, 700.0) * np.exp(0.02 * np.random.default_rng(5).standard_normal(1200))
    events = run(thr, series="throughput", mode="max")
    assert [(e.kind, e.severity) for e in events] == [("slowdown", "warning")]
    assert 900 < events[0].step <= 930  # once it has lasted 500 steps: a busy machine's dips are shorter
    assert events[0].series == "throughput"
    assert 0.6 < events[0].score < 0.8


def test_streaming_equals_offline_and_messages_say_what_when_and_what_to_try() -> None:
    v = with_spike(700, 3.0)
    det = AnomalyDetector()
    live = [e for s, x in enumerate(v.tolist()) for e in det.update(s, x)]
    assert live == run(v)
    spike = next(e for e in live if e.kind == "spike")
    assert "700" in spike.message
    assert "LR" in spike.message
    assert spike.score > 7
    assert spike.value == pytest.approx(v[700])


def test_state_dict_round_trip_resumes_identically() -> None:
    v = with_climb(1000)
    v[600] *= 2.5
    first = AnomalyDetector()
    events_a = [e for s, x in enumerate(v[:800].tolist()) for e in first.update(s, x)]
    state = json.loads(json.dumps(first.state_dict()))  # plain Python types only
    second = AnomalyDetector()
    second.load_state_dict(state)
    rest = [e for s, x in enumerate(v.tolist()) if s >= 800 for e in second.update(s, x)]
    assert events_a + rest == run(v)
    assert any(e.kind == "divergence" for e in rest)


def test_state_dict_holds_only_plain_types() -> None:
    det = AnomalyDetector()
    for s, x in enumerate(power_law(300).tolist()):
        det.update(s, x)

    def plain(x: object) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or type(x) in (int, float, bool, str)

    assert plain(det.state_dict())


def test_load_state_dict_names_missing_keys() -> None:
    with pytest.raises(KeyError, match="lacks the detector keys"):
        AnomalyDetector().load_state_dict({"n": 3})


@pytest.mark.parametrize(
    ("step", "value", "error", "match"),
    [
        (5, 1.0, ValueError, "`step` must increase, but step 5 follows 10"),
        (10, 1.0, ValueError, "`step` must increase, but step 10 follows 10"),
        (11.5, 1.0, TypeError, "Expected `step` to be an integer"),
        ("12", 1.0, TypeError, "Expected `step` to be an integer"),
        (12, "1.0", TypeError, "Expected `value` to be a real number"),
        (12, None, TypeError, "Expected `value` to be a real number"),
        (12, True, TypeError, "Expected `value` to be a real number"),
    ],
)
def test_bad_input(step: object, value: object, error: type[Exception], match: str) -> None:
    det = AnomalyDetector()
    det.update(10, 1.0)
    with pytest.raises(error, match=match):
        det.update(step, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "up"}, "Expected `mode` to be 'min'"),
        ({"kinds": ("spike", "bogus")}, r"Expected `kinds` to be among .*\['bogus'\]"),
        ({"lrs": []}, "`lrs` must hold the LR of at least one step"),
        ({"lrs": [0.1, float("nan")]}, r"`lrs` must be finite and non-negative, but lrs\[1\] = nan"),
    ],
)
def test_bad_config(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyDetector(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spike_z": 0}, "`spike_z` must be > 0, but got 0"),
        ({"drift_h": -1.0}, "`drift_h` must be > 0, but got -1.0"),
        ({"divergence_ratio": 1.0}, "`divergence_ratio` and `spike_warn_ratio` must be > 1, but got 1.0, 1.25"),
        ({"slowdown_ratio": 1.0}, r"`slowdown_ratio` and `plateau_fraction` must be in \(0, 1\), but got 1.0, 0.25"),
        ({"window_points": 0}, r"`window_points` must be >= 1 .* but got \(3, 3, 50, 0\) and 20"),
        ({"warmup_points": -1}, r"`warmup_points` >= 0, but got \(3, 3, 50, 128\) and -1"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DetectorSettings(**kwargs)  # type: ignore[arg-type]


def test_settings_compose_into_the_detector() -> None:
    assert AnomalyDetector().settings == DetectorSettings()
    assert AnomalyDetector("loss").series == "loss"
    det = AnomalyDetector(series="val_acc", mode="max", kinds=("slowdown",), lrs=[0.1, 0.1, 0.0])
    assert (det.series, det.mode, det.kinds, det.schedule.horizon) == ("val_acc", "max", {"slowdown"}, 2)
    quiet = DetectorSettings(spike_z=9.0, spike_recover_z=8.0)
    det = AnomalyDetector(settings=quiet)
    assert det.settings is quiet
    assert (det.level.outlier_z, det.checks["spike"].recover_z) == (9.0, 8.0)
    with pytest.raises(TypeError, match="Expected `settings` to be a DetectorSettings .*, but got dict"):
        AnomalyDetector(settings={"spike_z": 9.0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'spike_z'"):
        AnomalyDetector(spike_z=9.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional argument"):
        AnomalyDetector("loss", "max")  # type: ignore[misc]


def test_detect_anomalies_bad_arrays() -> None:
    with pytest.raises(ValueError, match="must have the same length, but got 3 and 2"):
        detect_anomalies([0, 1, 2], [1.0, 2.0])
    with pytest.raises(TypeError, match="Expected `values` to be real numbers"):
        detect_anomalies([0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="`step` must increase, but step 1 follows 2"):
        detect_anomalies([0, 2, 1], [1.0, 1.0, 1.0])


def test_nonpositive_values_switch_to_the_raw_scale() -> None:
    v = power_law() - 3.0  # crosses zero: logs are undefined, the detector carries on
    v[1200] += 5.0
    events = run(v, kinds=LOSS_KINDS)
    assert ("spike", 1200) in [(e.kind, e.step) for e in events]


def test_recovering_jump_needs_its_recovery() -> None:
    v = with_spike(800, 1.07, sigma=0.01)  # below the immediate threshold: found through its recovery
    assert kinds_at(run(v, kinds=LOSS_KINDS, settings=DetectorSettings(spike_recover_z=math.inf))) == []
    det = AnomalyDetector(kinds=LOSS_KINDS)
    assert [e for s, x in enumerate(v[:801].tolist()) for e in det.update(s, x)] == []  # not yet
    assert [(e.step, e.kind) for e in det.update(801, float(v[801]))] == [(800, "spike")]  # one step late


def sparse_noisy(n: int = 120, sigma: float = 0.04, seed: int = 0, onset: int | None = None) -> np.ndarray:
    """A sparse evaluation-style curve: ~100 points of a steep descent with a few percent noise per point;
    from ``onset`` on, the level climbs 1% per point instead."""
    t = np.arange(n)
    trend = 0.3 + 2.0 * np.exp(-t / 25.0)
    if onset is not None:
        trend = np.where(t >= onset, trend[onset] * 1.01 ** (t - onset), trend)
    return trend * np.exp(sigma * np.random.default_rng(seed).standard_normal(n))


# Sustained-rise rule: name, curve, onset of a climb (None: clean, nothing may fire)
SUSTAINED = [
    ("sparse noisy descent, seed 0", sparse_noisy(seed=0), None),
    ("sparse noisy descent, seed 1", sparse_noisy(seed=1), None),
    ("sparse noisy descent, seed 2", sparse_noisy(seed=2, sigma=0.05), None),
    ("sparse noisy climb of 1%/point, seed 0", sparse_noisy(seed=0, sigma=0.03, onset=70), 70),
    ("sparse noisy climb of 1%/point, seed 1", sparse_noisy(seed=1, onset=80), 80),
    ("sparse noisy climb of 1%/point, seed 3", sparse_noisy(seed=3, sigma=0.03, onset=75), 75),
]


@pytest.mark.parametrize(("name", "curve", "onset"), SUSTAINED, ids=[s[0] for s in SUSTAINED])
def test_sustained_rise_on_sparse_noisy_curves(name: str, curve: np.ndarray, onset: int | None) -> None:
    steps = np.arange(len(curve)) * 1000  # evaluations every 1000 steps
    div = [e for e in detect_anomalies(steps, curve, kinds=LOSS_KINDS) if e.kind == "divergence"]
    if onset is None:
        assert div == []
        return
    assert div, "no divergence reported"
    points = div[0].step // 1000 - onset
    # On these synthetic curves the catch comes at +19-21% (the real-curve benchmark: 111/112 before +20%).
    assert 0 < points < math.log(1.25) / math.log(1.01)  # before the loss has climbed 25%


def test_state_is_nested_by_part() -> None:
    det = AnomalyDetector()
    assert set(det.state_dict()) == {"level", *DEFAULT_KINDS["min"]}
    assert set(AnomalyDetector(mode="max").state_dict()) == {"level", *DEFAULT_KINDS["max"]}


def test_old_flat_state_is_refused_and_changes_nothing() -> None:
    v = power_law(600)
    det = AnomalyDetector()
    for s, x in enumerate(v[:300].tolist()):
        det.update(s, x)
    before = det.state_dict()
    flat = {k: x for part in before.values() for k, x in part.items()}  # one flat dict, as saved before
    with pytest.raises(KeyError, match="lacks the detector keys"):
        det.load_state_dict(flat)
    broken = json.loads(json.dumps(before))
    del broken["divergence"]["drift"]["cusum"]
    with pytest.raises(KeyError, match=r"lacks the keys \['cusum'\]"):
        det.load_state_dict(broken)
    assert det.state_dict() == before


def test_every_check_reports_a_known_kind() -> None:
    assert set(CHECKS) <= set(KINDS)
    assert all(kind == check.kind for kind, check in CHECKS.items())


def test_a_loss_that_touches_zero_never_crashes_and_divergence_still_works():
    """A loss that reaches exactly 0 (a perfectly fitted toy task) switches to the raw scale; no ratio to 0 is taken."""
    steps = np.arange(2000)
    converged = np.maximum(0.5 / (1 + steps / 50) - 0.004, 0.0)
    assert detect_anomalies(steps, converged) == []
    noisy = converged + np.abs(np.random.default_rng(1).normal(0.0, 1e-4, len(steps))) * (steps > 800)
    assert detect_anomalies(steps, noisy) == []  # specks of noise at 0 are no many-fold rise
    diverging = converged.copy()
    diverging[1500:] = np.linspace(0.0, 5.0, 500)
    events = detect_anomalies(steps, diverging)
    critical = [e for e in events if e.kind == "divergence" and e.severity == "critical"]
    assert len(critical) == 1
    assert 1500 < critical[0].step < 1600
    assert all(np.isfinite(e.score) or e.score == np.inf for e in events)
    assert all("inf" not in e.message and "nan" not in e.message for e in events)


def test_a_negative_loss_diverging_is_caught():
    """A Gaussian NLL goes below zero: the raw scale measures changes against the series' own size. A climb that takes
    64 points from half the ratio to the ratio (a linear drift, as an objective changing on purpose climbs) is warned
    of; one taking a few is confirmed (critical)."""
    steps = np.arange(2000)
    nll = -1.0 - np.log1p(steps / 30)
    assert not [e for e in detect_anomalies(steps, nll) if e.severity != "info"]
    slow, fast = nll.copy(), nll.copy()
    slow[1500:] += np.linspace(0.0, 10.0, 500)
    fast[1500:] += np.minimum(np.arange(500) * 0.5, 10.0)
    drift = [e for e in detect_anomalies(steps, slow) if e.kind == "divergence"]
    assert drift
    assert 1500 < drift[0].step < 1700
    assert all(e.severity == "warning" for e in drift)
    critical = [e for e in detect_anomalies(steps, fast) if e.severity == "critical"]
    assert [e.kind for e in critical] == ["divergence"]
    assert 1500 < critical[0].step < 1560


# --- false alarms on healthy curves (benchmarks/false_alarms.py measures them on real runs) ---------------------------


def noisy_fall(n: int, floor: float, sigma: float, seed: int, tau: float = 40.0, start: float = 2.0) -> np.ndarray:
    """A loss falling from ``start`` towards ``floor`` with multiplicative per-step noise ``sigma`` (log scale)."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (floor + (start - floor) * np.exp(-t / tau)) * np.exp(sigma * rng.standard_normal(n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_converged_loss_that_wobbles_has_not_diverged(seed: int) -> None:
    """2.0 -> 0.001, then a wobble to 0.0024 for 60 steps: 2.4x its best, but 0.07% of the progress made."""
    v = noisy_fall(1200, 0.001, 0.05, seed)
    v[800:860] *= 2.4
    assert [e for e in run(v, kinds=LOSS_KINDS) if e.kind == "divergence"] == []


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_per_step_loss_with_large_batch_noise_is_not_critical(seed: int) -> None:
    """Single small batches swing the loss 2-5x around its level: 1.5x its (biased-low) best, three times running,
    is no divergence."""
    v = noisy_fall(2000, 0.3, 0.6, seed, tau=100.0)
    assert [e for e in run(v, kinds=LOSS_KINDS) if e.severity == "critical"] == []


@pytest.mark.parametrize("seed", range(4))
def test_the_first_steps_bump_is_no_divergence(seed: int) -> None:
    """Adam's first steps (and batch size 1) bump the loss up 1.5-3x before it falls: the early transient."""
    v = noisy_fall(300, 0.2, 0.1, seed, tau=30.0, start=0.5)
    v[1:8] *= np.array([1.7, 1.9, 2.4, 3.0, 2.2, 1.6, 1.3])
    assert [e for e in run(v, kinds=LOSS_KINDS) if e.kind == "divergence"] == []


@pytest.mark.parametrize(("tau", "sigma", "seed"), [(5.0, 0.03, 0), (8.0, 0.01, 5), (8.0, 0.03, 1), (12.0, 0.003, 2)])
def test_a_fall_that_slows_down_is_no_spike(tau: float, sigma: float, seed: int) -> None:
    """While a steep fall slows, the slope of the last 16 differences overshoots: the next point is no spike."""
    t = np.arange(400)
    v = (0.05 + 2.0 * np.exp(-t / tau)) * np.exp(sigma * np.random.default_rng(seed).standard_normal(400))
    assert [e for e in run(v, kinds=LOSS_KINDS) if e.kind == "spike"] == []


def test_a_quantised_batch_accuracy_is_not_judged_by_a_zero_noise() -> None:
    """A batch accuracy of 4 examples takes 5 values: most differences are 0, and so is their MAD."""
    rng = np.random.default_rng(3)
    acc = rng.binomial(4, np.linspace(0.3, 0.7, 400)) / 4.0
    events = run(acc, series="train_acc", mode="max", kinds=LOSS_KINDS)
    assert [e for e in events if e.severity != "info"] == []


def test_a_reward_that_grows_tenfold_with_dips_has_not_diverged() -> None:
    """An RL return: 0.5 -> 5 with dips that give back half of it for a while (mode="max")."""
    t = np.arange(300)
    trend = 0.5 + 4.5 / (1 + np.exp(-(t - 100) / 25.0))
    dips = np.where((t > 180) & (t < 215), 0.5, 1.0)
    reward = trend * dips * np.exp(0.15 * np.random.default_rng(5).standard_normal(300))
    assert [e for e in run(reward, series="reward", mode="max", kinds=LOSS_KINDS) if e.severity != "info"] == []


def test_a_busy_machine_is_no_slowdown() -> None:
    """Other jobs halve the throughput for 60 and then 300 steps, and single steps stall: the machine's jitter."""
    rng = np.random.default_rng(4)
    thr = np.full(1500, 1000.0) * np.exp(0.05 * rng.standard_normal(1500))
    thr[250:310] *= 0.5
    thr[700:1000] *= 0.5
    thr[rng.random(1500) < 0.04] *= 0.3
    assert run(thr, series="throughput", mode="max") == []


def test_a_slowdown_must_outlast_the_dips_the_run_recovered_from() -> None:
    rng = np.random.default_rng(6)
    thr = np.full(3000, 1000.0) * np.exp(0.02 * rng.standard_normal(3000))
    thr[200:600] *= 0.5  # a 400-step dip it recovered from (unreported: under 500 steps)
    thr[1000:] *= 0.5  # then a lasting one: reported once it has lasted twice as long
    events = run(thr, series="throughput", mode="max")
    assert [e.kind for e in events] == ["slowdown"]
    assert 1000 + 800 < events[0].step < 1000 + 850


def test_a_spike_on_a_sparse_evaluation_curve_is_seen_before_its_20th_point() -> None:
    """Evaluations every 500 steps: the 20-point alarm warmup is for the first steps of a run, not 10,000 of them."""
    v = sparse_noisy(n=30, sigma=0.01, seed=4)
    v[12] *= 1.8
    events = detect_anomalies(np.arange(30) * 500, v, kinds=LOSS_KINDS)
    assert ("spike", 12 * 500) in [(e.kind, e.step) for e in events]


def test_a_steep_fall_landing_on_a_noisy_floor_gives_notes_not_warnings() -> None:
    """The noise learnt on a smooth fall is far below that of the floor it lands on: its first points are no alarm."""
    t = np.arange(300)
    rng = np.random.default_rng(9)
    floor_noise = np.where(t < 30, 0.01, 0.5)  # small batches: the floor is noisy, the steep fall is not
    v = (0.02 + 1.5 * np.exp(-t / 6.0)) * np.exp(floor_noise * rng.standard_normal(300))
    assert [e for e in run(v, kinds=LOSS_KINDS) if e.severity != "info"] == []


def test_a_spike_among_a_sparse_curves_first_points_is_noted() -> None:
    """Before 9 points the noise is unknown; the spread of the first differences still shows a 2x jump (a note)."""
    v = sparse_noisy(n=30, sigma=0.01, seed=4)
    v[6] *= 2.0
    events = detect_anomalies(np.arange(30) * 500, v, kinds=LOSS_KINDS)
    assert [(e.kind, e.step, e.severity) for e in events] == [("spike", 3000, "info")]
