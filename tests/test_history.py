import math
import pickle

import numpy as np
import pytest
import torch

from curvecast.history import RunHistory


def test_series_returns_what_was_appended_in_order():
    history = RunHistory()
    for step in range(10):
        history.append("loss", step, 10.0 - step)
    series = history.series("loss")
    np.testing.assert_array_equal(series.steps, np.arange(10))
    np.testing.assert_array_equal(series.values, 10.0 - np.arange(10))
    np.testing.assert_array_equal(series.counts, np.ones(10))
    assert history.last("loss") == (9, 1.0)
    assert history.names() == ["loss"]


def test_series_views_are_read_only():
    history = RunHistory()
    history.extend("loss", [0, 1], [1.0, 0.5])
    with pytest.raises(ValueError, match="read-only"):
        history.series("loss").values[0] = 3.0


def test_repeated_steps_replace_the_later_part_instead_of_duplicating():
    history = RunHistory()
    history.extend("loss", range(0, 10), np.linspace(1, 0.1, 10))
    # A run resumed from the checkpoint at step 6 logs steps 6.. again, with new values.
    history.extend("loss", range(6, 12), np.full(6, 7.0))
    series = history.series("loss")
    np.testing.assert_array_equal(series.steps, np.arange(12))
    assert series.values[5] == pytest.approx(0.5)
    np.testing.assert_array_equal(series.values[6:], 7.0)


def test_extend_rejects_non_increasing_steps():
    with pytest.raises(ValueError, match=r"`steps` must increase, but step 3 follows 5 \(index 2\)"):
        RunHistory().extend("loss", [1, 5, 3], [1.0, 2.0, 3.0])


def test_extend_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="1-D of the same length"):
        RunHistory().extend("loss", [1, 2], [1.0])


def test_unknown_series_names_the_recorded_ones():
    history = RunHistory()
    history.append("loss", 0, 1.0)
    with pytest.raises(KeyError, match=r"No series named 'val_loss'; recorded series: \['loss'\]"):
        history.series("val_loss")


@pytest.mark.parametrize(("window", "max_bins"), [(0, 10), (10, 1)])
def test_invalid_sizes_are_rejected(window, max_bins):
    with pytest.raises(ValueError, match="Expected `(window|max_bins)`"):
        RunHistory(window=window, max_bins=max_bins)


def test_memory_is_bounded_and_the_old_curve_keeps_its_shape():
    window, max_bins = 100, 50
    history = RunHistory(window=window, max_bins=max_bins)
    steps = np.arange(100_000)
    values = 2.0 + 5.0 * (1 + steps / 100.0) ** -0.5
    history.extend("loss", steps, values)
    series = history.series("loss")
    assert len(series) <= 2 * window + max_bins
    assert series.counts.sum() == len(steps) == history.num_points("loss")
    assert np.all(np.diff(series.steps) > 0)
    # Each bin is the mean of a stretch of the curve: it lies on the curve evaluated near its mean step.
    expected = np.interp(series.steps, steps, values)
    assert np.max(np.abs(series.values - expected) / expected) < 0.01
    # The exact window is untouched.
    np.testing.assert_array_equal(series.values[-window:], values[-window:])


def test_non_finite_points_stay_visible_after_compression():
    history = RunHistory(window=4, max_bins=2)
    history.extend("loss", range(8), [1.0, math.nan, math.inf, math.nan, 1.0, 1.0, 1.0, 1.0])
    series = history.series("loss")
    assert series.counts.sum() == 8
    # Two bins: steps 0-1 (the NaN is left out of the mean) and steps 2-3, all non-finite, which reads NaN.
    compressed = series.values[: len(series) - 4]
    assert len(compressed) == 2
    assert compressed[0] == 1.0
    assert np.isnan(compressed[1])


def test_state_dict_round_trip_uses_plain_types_and_survives_weights_only_load(tmp_path):
    history = RunHistory(window=50, max_bins=20)
    history.extend("loss", range(1000), np.linspace(3, 1, 1000))
    history.extend("val_loss", [100, 200], [2.5, 2.0])
    state = history.state_dict()
    path = tmp_path / "state.pt"
    torch.save(state, path)
    restored = RunHistory()
    restored.load_state_dict(torch.load(path, weights_only=True))
    for name in ("loss", "val_loss"):
        a, b = history.series(name), restored.series(name)
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.counts, b.counts)
    # Appending after a restore continues exactly as the original would.
    history.append("loss", 1000, 0.9)
    restored.append("loss", 1000, 0.9)
    np.testing.assert_array_equal(history.series("loss").values, restored.series("loss").values)
    assert pickle.loads(pickle.dumps(state)) == state


def test_load_state_dict_rejects_an_unknown_version():
    with pytest.raises(ValueError, match="version 1, but got 99"):
        RunHistory().load_state_dict({"version": 99, "series": {}})
