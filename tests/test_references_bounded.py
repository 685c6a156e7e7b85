"""References read from the logs of long runs: bounded points and LR knots, and a forecast whose cost does not grow with
the reference's length."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from curvecast.forecasting import Forecaster
from curvecast.forecasting import references as references_module
from curvecast.forecasting.references import MAX_REFERENCE_POINTS, Reference, grid_bins
from curvecast.forecasting.schedule import LRSchedule
from curvecast.logreaders import make_curve
from curvecast.logreaders.reference_runs import MAX_LR_SEGMENTS, lr_knots, references_from_logs
from curvecast.logreaders.select import lr_at_every_step

LONG = 50_000_000  # a long run logged sparsely: a few thousand rows reaching step 5e7
SHORT = 20_000
ROWS = 3000
FRACTION = 0.3  # of the live run seen when it forecasts


def _lr(steps: np.ndarray, horizon: int) -> np.ndarray:
    """Warmup over 2 % of the run, then a cosine to a tenth of the peak."""
    x = np.asarray(steps, dtype=np.float64) / horizon
    cosine = 0.1 + 0.45 * (1 + np.cos(np.pi * np.clip((x - 0.02) / 0.98, 0, 1)))
    return 1e-3 * np.where(x < 0.02, x / 0.02, cosine)


def _loss(steps: np.ndarray, horizon: int, seed: int, noise: float = 0.01) -> np.ndarray:
    x = (np.asarray(steps, dtype=np.float64) + 1) / horizon
    clean = (1 + 0.02 * seed) * (2.0 + 0.8 * (x * 1e3) ** -0.3 - 0.15 * np.clip((x - 0.5) / 0.5, 0, 1) ** 2)
    return clean * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(x)))


def _logged_steps(horizon: int, rows: int) -> np.ndarray:
    return np.unique(np.linspace(0, horizon, rows).round().astype(np.int64))


def _write_csv(run: Path, horizon: int, rows: int, seed: int) -> None:
    """A run as Lightning's CSVLogger leaves it, with a LearningRateMonitor's column."""
    run.mkdir(parents=True)
    steps = _logged_steps(horizon, rows)
    lines = ["epoch,lr-AdamW,step,train_loss"]
    points = zip(steps, _lr(steps, horizon), _loss(steps, horizon, seed), strict=True)
    lines += [f"0,{lr:.8g},{s},{v:.8g}" for s, lr, v in points]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")


def _write_events(run: Path, horizon: int, rows: int, seed: int) -> None:
    """A run as a TensorBoard writer leaves it."""
    from torch.utils.tensorboard import SummaryWriter

    steps = _logged_steps(horizon, rows)
    with SummaryWriter(run) as writer:
        for s, lr, v in zip(steps.tolist(), _lr(steps, horizon), _loss(steps, horizon, seed), strict=True):
            writer.add_scalar("train_loss", v, s)
            writer.add_scalar("lr-AdamW", lr, s)


def _recipe(root: Path, horizon: int, rows: int = ROWS, runs: int = 3, write=_write_csv) -> Path:
    for seed in range(runs):
        write(root / f"version_{seed}", horizon, rows, seed)
    return root


def _elements(obj, seen=None) -> int:
    """Elements of every numpy array a reference holds, its LR schedule's and its cached bins' included."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.size
    if isinstance(obj, dict):
        return sum(_elements(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_elements(v, seen) for v in obj)
    if type(obj).__module__.startswith("curvecast."):
        return _elements(vars(obj), seen)
    return 0


def _live(horizon: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, LRSchedule]:
    """The next seed of the recipe, seen up to FRACTION of its run, and its planned schedule."""
    seen = np.unique(np.linspace(0, FRACTION * horizon, int(FRACTION * ROWS)).round())
    return seen, _loss(seen, horizon, seed), LRSchedule.from_function(lambda s: _lr(s, horizon), horizon)


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("write", [_write_csv, _write_events], ids=["csv", "tensorboard"])
def test_a_long_run_logged_sparsely_keeps_its_rows_and_its_lr_as_knots(tmp_path, write):
    found = references_from_logs(_recipe(tmp_path / "long", LONG, write=write), "loss")
    short = references_from_logs(_recipe(tmp_path / "short", SHORT, write=write), "loss")

    assert len(found.references) == len(short.references) == 3, found.skipped
    for ref, ref_short in zip(found.references, short.references, strict=True):
        assert ref.steps[-1] == LONG
        assert len(ref.steps) == ROWS  # a few thousand rows are kept as they are
        assert isinstance(ref.lrs, LRSchedule)
        assert not ref.lrs.dense
        assert ref.lrs.horizon == LONG
        assert len(ref.lrs.knots()[0]) <= 2 * ROWS
        # What a reference keeps does not depend on the step its run reached, only on the rows logged.
        assert _elements(ref) == _elements(ref_short) < 40 * MAX_REFERENCE_POINTS


def test_more_rows_than_the_bound_are_binned_keeping_the_end_the_counts_and_the_lr_area(tmp_path):
    rows = 3 * MAX_REFERENCE_POINTS
    (ref,) = references_from_logs(_recipe(tmp_path, LONG, rows=rows, runs=1), "loss").references

    assert len(ref.steps) <= MAX_REFERENCE_POINTS
    assert len(ref.lrs.knots()[0]) <= 2 * MAX_LR_SEGMENTS
    assert _elements(ref) < 40 * MAX_REFERENCE_POINTS
    assert ref.steps[-1] == LONG  # the run's end is kept exactly: it is what the forecast reads as the end
    assert ref.counts.sum() == rows
    steps = _logged_steps(LONG, rows)
    # The mean of the logged values (written with 8 digits) is the mean of the bins.
    np.testing.assert_allclose(np.average(ref.values, weights=ref.counts), _loss(steps, LONG, 0).mean(), rtol=1e-7)
    # The LR area fraction at the kept points, the LR's only use, against the LR each logged value holds until the
    # next one; summed per segment rather than per step (50 million of them).
    logged = _lr(steps, LONG)
    lengths = np.diff(np.r_[steps, LONG + 1])
    area_at = np.cumsum(logged * lengths) / np.sum(logged * lengths)
    mine = ref.lrs.area(steps[1:] - 1.0) / ref.lrs.area(np.array([float(LONG)]))
    np.testing.assert_allclose(mine, area_at[:-1], atol=1e-5)


@pytest.mark.parametrize(
    ("steps", "values", "horizon"),
    [
        ([0, 10, 20], [1.0, 0.5, 0.1], 29),  # held past the last logged step, within one logging interval
        ([5, 6, 7, 30], [0.2, 0.4, 0.0, 0.3], 31),  # before the first logged step: the first value
        ([-3, 0, 4, 9], [0.1, 0.2, 0.3, 0.4], 9),  # steps before 0 and a value at the last step
        ([0, 1, 2, 3, 4, 5], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 5),  # a new value every step
    ],
)
def test_lr_knots_give_the_lr_of_every_step(steps, values, horizon):
    curve = make_curve("lr", steps, values)
    schedule = lr_knots(curve, horizon)
    dense = lr_at_every_step(curve, horizon)
    np.testing.assert_allclose(schedule.u_at(np.arange(horizon + 1)) * schedule.peak_lr, dense, rtol=1e-15)
    np.testing.assert_allclose(schedule.area(np.arange(horizon + 1.0)), np.cumsum(dense) / dense.max(), rtol=1e-12)


@pytest.mark.parametrize(
    ("steps", "values", "horizon"),
    [
        ([0, 10, 20], [1.0, 0.5, 0.1], 100),  # the log stops well short of the run's end
        ([0, 10, 20], [1.0, -0.5, 0.1], 20),
        ([0, 10, 20], [1.0, np.nan, 0.1], 20),
    ],
)
def test_lr_knots_refuse_a_log_that_does_not_tell_the_schedule(steps, values, horizon):
    assert lr_knots(make_curve("lr", steps, values), horizon) is None


def test_many_lr_values_are_merged_with_the_area_exact_at_each_bin_edge():
    rng = np.random.default_rng(0)
    steps = np.unique(rng.integers(1, 10**7, 20_000))
    values = rng.uniform(0.0, 1.0, len(steps))
    horizon = int(steps[-1])
    schedule = lr_knots(make_curve("lr", steps, values), horizon, max_segments=512)
    assert len(schedule.knots()[0]) <= 2 * 512
    starts = np.r_[0, steps]
    area = np.cumsum(np.r_[values[0], values] * np.diff(np.r_[starts, horizon + 1]))  # up to the end of each segment
    # Segments are merged in the bins of grid_bins: the area up to the step before each bin is the logged LRs' area.
    keys = grid_bins(starts, horizon, 512)
    first = np.flatnonzero(np.diff(keys)) + 1  # the first segment of each bin after the first
    assert len(first) > 200
    np.testing.assert_allclose(schedule.area(starts[first] - 1.0) * schedule.peak_lr, area[first - 1], rtol=1e-9)


def test_binning_a_long_reference_keeps_its_forecast():
    horizon, rows = 400_000, 40_000
    steps = _logged_steps(horizon, rows)
    lrs = _lr(np.arange(horizon + 1), horizon)
    whole = [Reference(steps, _loss(steps, horizon, seed), lrs) for seed in range(3)]
    binned = [Reference.bounded(steps, _loss(steps, horizon, seed), lrs) for seed in range(3)]
    assert all(len(r.steps) <= MAX_REFERENCE_POINTS for r in binned)
    seen, values, schedule = _live(horizon)
    forecasts = [Forecaster().fit(seen, values, horizon, lrs=schedule, references=refs) for refs in (whole, binned)]
    assert all(f.ok and "reference" in f.model for f in forecasts)
    assert forecasts[1].final == pytest.approx(forecasts[0].final, rel=2e-4)


def test_a_forecast_with_long_references_costs_what_one_with_short_ones_does(tmp_path, monkeypatch):
    prepared = []
    prepare = references_module._prepare
    monkeypatch.setattr(references_module, "_prepare", lambda ref, bins: prepared.append(ref) or prepare(ref, bins))
    peaks = {}
    for name, horizon in (("short", SHORT), ("long", LONG)):
        refs = references_from_logs(_recipe(tmp_path / name, horizon), "loss").references
        seen, values, schedule = _live(horizon)

        def fit(refs=refs, seen=seen, values=values, schedule=schedule, horizon=horizon):
            forecast = Forecaster().fit(seen, values, horizon, lrs=schedule, references=refs)
            assert forecast.ok
            assert "reference" in forecast.model

        first = _peak_bytes(fit)  # bins each reference, once
        peaks[name] = (first, _peak_bytes(fit), _peak_bytes(fit))
    assert len(prepared) == 6  # once per reference, over three forecasts each
    # Memory allocated during a forecast: the same for a run of 5e7 steps as of 2e4 (one LR per step of one reference
    # would be 400 MB), both at the first forecast and later.
    for short, long in zip(peaks["short"], peaks["long"], strict=True):
        assert long < 1.5 * short + 500_000
    assert max(peaks["long"]) < 8_000_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lrs": LRSchedule.from_knots([0, 9], [1.0, 1.0])}, r"lrs must cover steps 0\.\.4, but the schedule covers"),
        ({"counts": [1.0, 1, 0, 1, 1]}, "counts must be one positive number per value"),
        ({"counts": [1.0, 1]}, "counts must be one positive number per value"),
    ],
)
def test_invalid_reference_lrs_or_counts_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reference([0, 1, 2, 3, 4], [5.0, 4, 3, 2, 1], **kwargs)


def test_bounded_keeps_a_short_curve_whole_and_refuses_too_few_points():
    steps, values = np.arange(10.0), np.linspace(2, 1, 10)
    ref = Reference.bounded(steps, values)
    np.testing.assert_array_equal(ref.steps, steps)
    assert ref.counts is None
    with pytest.raises(ValueError, match="`max_points` must be at least 6, but got 3"):
        Reference.bounded(steps, values, max_points=3)


def test_grid_bins_are_bounded_and_finer_than_even_and_log_spaced_bins():
    steps = np.arange(0, LONG + 1, 997)
    keys = grid_bins(steps, LONG, 256)
    assert keys.min() == 0
    assert keys.max() == 255
    assert np.all(np.diff(keys) >= 0)
    edges = np.flatnonzero(np.diff(keys)) + 1
    widths = np.diff(steps[edges])
    assert widths.max() <= 2 * LONG / 256 + 997
    assert np.all(widths[1:] <= np.log1p(LONG) / 128 * steps[edges][1:-1] + 2 * 997)


def test_a_trainer_with_references_to_long_runs_finishes_and_forecasts(tmp_path, quiet_trainer_kwargs):
    import pytorch_lightning as pl

    from curvecast import Curvecast
    from tiny_models import TinyRegression, loader

    root = _recipe(tmp_path / "runs", LONG)
    curvecast = Curvecast(forecast_every=8, background=False, forecast_budget=None, gradient_noise=False,
                          throughput=False, advice=False, log_forecasts=False, references=root)  # fmt: skip
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(**dict(quiet_trainer_kwargs, max_steps=64, callbacks=[curvecast]))
    trainer.fit(TinyRegression(lr=0.02), loader(256, 32))

    assert len(curvecast.cadence.references) == 3
    assert all(isinstance(r.lrs, LRSchedule) and r.steps[-1] == LONG for r in curvecast.cadence.references)
    forecasts = [r.forecast for r in curvecast.reports if r.forecast is not None]
    assert forecasts
    assert forecasts[-1].ok
