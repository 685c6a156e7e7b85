"""ForecastScheduler on a real local Ray cluster: concurrent trials, the hopeless ones stopped, the best one kept."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from curvecast.integrations.ray_tune import ForecastScheduler

HORIZON = 200
STEPS = list(range(10, HORIZON + 1, 10))
# Eight configurations, run four at a time: four good ones first (the population), then two hopeless, one better, one
# ordinary. The order of results between concurrent trials is Ray's, so the assertions hold for any interleaving.
FLOORS = (1.2, 1.21, 1.19, 1.2, 3.0, 0.8, 2.8, 1.22)


def _values(floor: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.asarray(STEPS, dtype=np.float64)
    return list((floor + 2.0 * (1 + t / 20) ** -0.7) * (1 + 0.005 * rng.standard_normal(len(t))))


def _trainable(config: dict) -> None:
    from ray import tune

    for step, value in zip(STEPS, _values(config["floor"], FLOORS.index(config["floor"])), strict=True):
        tune.report({"loss": value, "step": step, "curvecast": {"horizon": HORIZON}})


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    # The workers import this module to run its trainable: they get the test folders on their path.
    here = Path(__file__).resolve().parent
    path = os.pathsep.join(str(p) for p in (here, here.parent, here.parents[1]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_concurrent_trials_the_hopeless_stopped_the_best_kept(ray_cluster, tmp_path: Path) -> None:
    from ray import tune

    scheduler = ForecastScheduler(time_attr="step")
    results = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": 0.5}),  # four at a time on two CPUs
        param_space={"floor": tune.grid_search(list(FLOORS))},
        tune_config=tune.TuneConfig(
            metric="loss", mode="min", scheduler=scheduler, max_concurrent_trials=4, reuse_actors=True
        ),  # a fresh worker per trial costs seconds
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert not results.errors
    last_step = {r.config["floor"]: int(r.metrics["step"]) for r in results}
    assert set(last_step) == set(FLOORS)
    assert last_step[0.8] == HORIZON  # the best configuration ran to its end
    assert last_step[3.0] < HORIZON
    assert last_step[2.8] < HORIZON
    assert results.get_best_result().config["floor"] == 0.8
    # No lost report: every result a trial reported reached the scheduler, in order.
    for result in results:
        history = result.metrics_dataframe
        trial_id = result.metrics["trial_id"]
        curve = scheduler._curves[trial_id]  # noqa: SLF001 - what the scheduler judged from
        assert curve.steps == [float(s) for s in history["step"]]
        assert all(math.isclose(a, b) for a, b in zip(curve.values, history["loss"], strict=True))
    stopped = [v for v in scheduler.verdicts.values() if v.prune]
    assert len(stopped) >= 2


def test_argument_errors() -> None:
    pytest.importorskip("ray.tune")
    with pytest.raises(ValueError, match=r"Expected `mode` to be one of 'min', 'max' or None, but got 'up'"):
        ForecastScheduler(mode="up")
    with pytest.raises(ValueError, match=r"Expected `confidence` to lie in \[0.5, 1\), but got 0.2"):
        ForecastScheduler(confidence=0.2)
