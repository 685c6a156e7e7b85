"""A damaged saved state: every field is checked as it loads, and a part that fails starts afresh with a warning.

Never a failed resume (``int(inf)`` used to raise ``OverflowError`` out of ``load_state_dict``), never a detector
that loads a count of ``'x'`` and then stays silent through a divergence, and the loss history always survives.
"""

from __future__ import annotations

import copy
import json
import math
import warnings

import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from curvecast.forecasting.anomalies import AnomalyDetector, InstabilityMonitor
from curvecast.integrations import StopReason
from curvecast.state_checks import checked_real, checked_whole
from run_helpers import tiny_trainer
from tiny_models import CurveModule

INF = math.inf
LEVEL = ("watch", "instability", "loss", "level")
# (the part the warning names, the path of the damaged field in the bundle's state, the value put there)
DAMAGES = {
    "loss_spike_n=inf": ("watch", ("watch", "instability", "loss_spike_n"), INF),
    "n=inf": ("watch", ("watch", "instability", "n"), INF),
    "up_run=inf": ("watch", ("watch", "instability", "up_run"), INF),
    "throughput steps=inf": ("throughput", ("throughput", "totals", "steps"), INF),
    "throughput samples=inf": ("throughput", ("throughput", "totals", "samples"), INF),
    "gns updates=inf": ("gradient_noise", ("gradient_noise", "estimator", "state"), [0.0, 0.0, 0.0, INF]),
    "tab last_events_step=inf": ("tensorboard", ("tensorboard", "tab", "last_events_step"), INF),
    "level/n='x'": ("watch", (*LEVEL, "n"), "x"),
    "level/sigma=None": ("watch", (*LEVEL, "sigma"), None),
    "level/n=True": ("watch", (*LEVEL, "n"), True),
    "level/sigma=inf": ("watch", (*LEVEL, "sigma"), INF),
    "level/recent holds a str": ("watch", (*LEVEL, "recent"), [1.0, "2.0"]),
    "level/mute_until past its bound": ("watch", (*LEVEL, "mute_until"), 10**12),
    "drift/cusum=nan": ("watch", ("watch", "instability", "loss", "divergence", "drift", "cusum"), math.nan),
    "blowup/critical_armed=1": ("watch", ("watch", "instability", "loss", "divergence", "blowup", "critical_armed"), 1),
    "last_paired past the monitor": ("watch", ("watch", "last_paired"), 10**9),
    "early_stopping wait=inf": ("early_stopping", ("early_stopping", "rule", "wait"), INF),
}


def _bundle() -> Curvecast:
    return Curvecast(forecast_budget=None, early_stopping=True, background=False)


def _used_bundle() -> Curvecast:
    """A bundle whose detectors have seen a falling loss and a gradient norm (their state is not the fresh one)."""
    bundle = _bundle()
    rng = np.random.default_rng(0)
    for step in range(300):
        bundle.history.append("grad_norm", step, 1.0 + 0.05 * rng.standard_normal())
        bundle.history.append("loss", step, (2.0 + 3.0 * (1 + step / 10) ** -0.5) * math.exp(0.01 * rng.normal()))
    bundle.throughput.totals = {"steps": 7, "samples": 56, "seconds": 0.5}
    return bundle


def _damaged(state: dict, path: tuple[str, ...], value: object) -> dict:
    state = copy.deepcopy(state)
    entry = state
    for key in path[:-1]:
        entry = entry[key]
    entry[path[-1]] = value
    return state


def _as_text(state: object) -> str:
    return json.dumps(state, sort_keys=True)  # NaN != NaN: compared as text


@pytest.mark.parametrize(("part", "path", "value"), DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_field_is_a_warning_naming_its_part_and_a_fresh_start_for_it_alone(part, path, value):
    first = _used_bundle()
    state = first.state_dict()
    second = _bundle()
    with pytest.warns(CurvecastWarning, match=f"state of '{part}' could not be restored") as caught:
        second.load_state_dict(_damaged(state, path, value))
    assert len([w for w in caught if "could not be restored" in str(w.message)]) == 1
    np.testing.assert_array_equal(second.history.series("loss").values, first.history.series("loss").values)
    restored = second.state_dict()
    for name in state:  # the damaged part is fresh, the others are restored
        expected = _bundle().state_dict()[name] if name == part else state[name]
        assert _as_text(restored[name]) == _as_text(expected), name


@pytest.mark.parametrize("part", ["watch", "throughput", "gradient_noise", "early_stopping", "tensorboard"])
def test_a_part_saved_as_none_is_a_warning_saying_so_and_a_fresh_start_for_it_alone(part):
    first = _used_bundle()
    state = first.state_dict()
    second = _bundle()
    message = rf"state of '{part}' could not be restored \(TypeError: Expected a dict, but got NoneType\)"
    with pytest.warns(CurvecastWarning, match=message):
        second.load_state_dict({**state, part: None})
    np.testing.assert_array_equal(second.history.series("loss").values, first.history.series("loss").values)
    assert _as_text(second.state_dict()[part]) == _as_text(_bundle().state_dict()[part])


@pytest.mark.parametrize("state", [None, [], "state"], ids=["None", "list", "str"])
def test_a_whole_state_that_is_no_dict_is_a_warning_and_changes_nothing(state):
    bundle = _bundle()
    bundle.history.extend("loss", range(5), [5.0, 4.0, 3.0, 2.0, 1.0])
    before = bundle.state_dict()
    with pytest.warns(CurvecastWarning, match=r"curvecast state could not be restored \(TypeError: Expected a dict"):
        bundle.load_state_dict(state)
    assert _as_text(bundle.state_dict()) == _as_text(before)


def test_an_undamaged_state_loads_identically():
    first = _used_bundle()
    state = first.state_dict()
    assert state["watch"]["instability"]["loss"]["level"]["n"] > 0  # a used state, not the fresh one
    second = _bundle()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*could not be restored.*", category=CurvecastWarning)
        second.load_state_dict(json.loads(json.dumps(state)))  # plain values, as a JSON or torch round trip gives
    assert _as_text(second.state_dict()) == _as_text(state)


def test_a_failed_load_changes_nothing_in_the_monitor():
    monitor = InstabilityMonitor()
    for step in range(200):
        monitor.update(step, loss=2.0 + 1.0 / (step + 1) + 0.01 * (step % 3), grad_norm=1.0 + 0.01 * (step % 2))
    before = _as_text(monitor.state_dict())
    damaged = json.loads(before)
    damaged["loss"]["level"]["n"] = 300  # the loss detector's part reads well; the grad detector's does not
    damaged["grad"]["spike"]["in_spike"] = "no"
    with pytest.raises(TypeError, match=r"Expected `SpikeCheck.in_spike` to be a bool, but got str 'no'"):
        monitor.load_state_dict(damaged)
    assert _as_text(monitor.state_dict()) == before


@pytest.mark.parametrize(
    ("path", "value", "error", "match"),
    [
        (("level", "n"), -1, ValueError, r"Expected `SeriesLevel.n` to lie in \[0, "),
        (("level", "n_accepted"), 10**6, ValueError, r"Expected `SeriesLevel.n_accepted` to lie in \[0, 300\]"),
        (("level", "first_step"), 2.5, ValueError, "Expected `SeriesLevel.first_step` to be a whole number"),
        (("level", "sigma"), -0.1, ValueError, r"Expected `SeriesLevel.sigma` to lie in \[0.0, inf\]"),
        (("level", "last_z"), INF, ValueError, r"Expected `SeriesLevel.last_z` to be a finite real number or nan"),
        (("level", "progress", "best"), -INF, ValueError, "Expected `Progress.best` to be a finite real number or inf"),
        (("level", "diffs"), [0.0] * 1000, ValueError, "Expected `SeriesLevel.diffs` to hold at most"),
        (("spike", "pending"), "x", TypeError, "Expected `SpikeCheck.pending` to be None, a number or a list"),
        (("divergence", "drift"), None, TypeError, "Expected the DriftRule state to be a dict, but got NoneType"),
        (("divergence", "drift", "cusum"), "1", TypeError, "Expected `DriftRule.cusum` to be a real number"),
    ],
)
def test_a_detector_refuses_a_damaged_field_by_name_and_stays_as_it_was(path, value, error, match):
    detector = AnomalyDetector()
    for step in range(300):
        detector.update(step, 2.0 + 3.0 * (1 + step / 10) ** -0.5 + 0.01 * (step % 3))
    before = _as_text(detector.state_dict())
    with pytest.raises(error, match=match):
        detector.load_state_dict(_damaged(json.loads(before), path, value))
    assert _as_text(detector.state_dict()) == before


@pytest.mark.parametrize(
    ("check", "value", "kwargs", "error", "match"),
    [
        (checked_whole, INF, {}, ValueError, "Expected `f` to be a whole number, but got float inf"),
        (checked_whole, True, {}, TypeError, "Expected `f` to be a whole number, but got bool True"),
        (checked_whole, -1, {"low": 0}, ValueError, r"Expected `f` to lie in \[0, "),
        (checked_real, math.nan, {}, ValueError, "Expected `f` to be a finite real number, but got nan"),
        (checked_real, 10**400, {}, ValueError, "Expected `f` to be a finite real number"),
        (checked_real, None, {}, TypeError, "Expected `f` to be a real number, but got NoneType None"),
    ],
    ids=["whole-inf", "whole-bool", "whole-below", "real-nan", "real-past-float", "real-None"],
)
def test_the_field_checks_name_the_field(check, value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check("`f`", value, **kwargs)


# -- a real resume ----------------------------------------------------------------------------------------------------

STEPS, SAVED_AT, CLIMB_FROM = 400, 150, 200


def _diverging_curve() -> np.ndarray:
    """A noisy power-law fall that turns into an exponential climb at ``CLIMB_FROM``, after the checkpoint."""
    t = np.arange(STEPS)
    curve = (2.0 + 3.0 * (1 + t / 10) ** -0.5) * np.exp(0.01 * np.random.default_rng(0).standard_normal(STEPS))
    curve[CLIMB_FROM:] *= np.exp(0.02 * (t[CLIMB_FROM:] - CLIMB_FROM))
    return curve


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run stopped for its divergence, with a checkpoint from before the climb; the checkpoint's path and the step
    the run was stopped at."""
    tmp_path = tmp_path_factory.mktemp("saved")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=SAVED_AT, save_top_k=-1)
    bundle = _bundle()
    trainer = tiny_trainer(tmp_path, [bundle, checkpoint], STEPS, logger=False, enable_checkpointing=True)
    trainer.fit(CurveModule(curve=_diverging_curve()))
    assert bundle.early_stopping.stop_request.reason is StopReason.DIVERGENCE
    return tmp_path / "ckpt" / f"epoch=0-step={SAVED_AT}.ckpt", bundle.early_stopping.stop_request.step


@pytest.mark.parametrize("damage", ["level/n='x'", "level/sigma=None", "loss_spike_n=inf", "n=inf", "up_run=inf"])
def test_a_resume_from_a_damaged_checkpoint_still_stops_the_divergence(saved_run, tmp_path, damage):
    path, stopped_at = saved_run
    part, field, value = DAMAGES[damage]
    checkpoint = torch.load(path, weights_only=True)
    bundle = _bundle()
    state = checkpoint["callbacks"][bundle.state_key]
    checkpoint["callbacks"][bundle.state_key] = _damaged(state, field, value)
    damaged = tmp_path / "damaged.ckpt"
    torch.save(checkpoint, damaged)

    trainer = tiny_trainer(tmp_path, [bundle], STEPS, logger=False)
    with pytest.warns(CurvecastWarning, match=f"state of '{part}' could not be restored"):
        trainer.fit(CurveModule(curve=_diverging_curve()), ckpt_path=damaged)

    request = bundle.early_stopping.stop_request
    assert request is not None
    assert request.reason is StopReason.DIVERGENCE
    assert CLIMB_FROM < request.step <= stopped_at + 20
    assert trainer.global_step < STEPS
    loss = bundle.history.series("loss")
    np.testing.assert_array_equal(loss.steps[:SAVED_AT], np.arange(SAVED_AT))  # the history from before the resume
    np.testing.assert_allclose(loss.values[:SAVED_AT], _diverging_curve()[:SAVED_AT], rtol=1e-6)
