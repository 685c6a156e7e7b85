import math
import pickle
import random
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from curvecast.history import RunHistory
from curvecast.series_store import Rows, bin_means


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
    with pytest.raises(ValueError, match="version 2, but got 99"):
        RunHistory().load_state_dict({"version": 99, "series": {}})


# --- the step and value contract of append ---------------------------------------------------------------------------


def test_integral_float_and_numpy_steps_are_recorded_as_ints():
    history = RunHistory()
    heard = []
    history.add_listener(lambda name, step, value: heard.append((name, step, value)))
    history.append("loss", 3.0, 1.0)
    history.append("loss", np.int64(4), np.float32(0.5))
    history.append("loss", np.float64(5.0), 2)
    assert heard == [("loss", 3, 1.0), ("loss", 4, 0.5), ("loss", 5, 2.0)]
    assert all(type(step) is int and type(value) is float for _, step, value in heard)
    assert history.last("loss") == (5, 2.0)
    np.testing.assert_array_equal(history.series("loss").steps, [3, 4, 5])


@pytest.mark.parametrize(
    ("step", "error", "problem"),
    [
        (-1, ValueError, "step -1 is negative"),
        (-3.0, ValueError, r"step -3\.0 is negative"),
        (2.5, ValueError, r"step 2\.5 is not an integer"),
        (math.nan, ValueError, "step nan is not finite"),
        (math.inf, ValueError, "step inf is not finite"),
        (2**53 + 1, ValueError, r"step 9007199254740993 is above 2\*\*53"),
        ("7", TypeError, "step '7' is a str, not an integer"),
        (None, TypeError, "step None is a NoneType, not an integer"),
        (True, TypeError, "step True is a bool, not an integer"),
    ],
    ids=["negative", "negative-float", "fractional", "nan", "inf", "beyond-2**53", "str", "none", "bool"],
)
def test_invalid_steps_are_rejected_naming_the_series_the_step_and_the_problem(step, error, problem):
    history = RunHistory()
    history.append("loss", 0, 1.0)
    heard = []
    history.add_listener(lambda *point: heard.append(point))
    with pytest.raises(error, match=rf"^Series 'loss': {problem}; steps are non-negative integers up to 2\*\*53$"):
        history.append("loss", step, 0.5)
    # Nothing was recorded, nothing was heard.
    assert history.num_points("loss") == 1
    assert history.last("loss") == (0, 1.0)
    assert heard == []


@pytest.mark.parametrize(
    ("value", "error", "problem"),
    [
        ("1.5", TypeError, "value '1.5' is a str, not a number"),
        (True, TypeError, "value True is a bool, not a number"),
        (None, TypeError, "value None is not a real number"),
        (1 + 2j, TypeError, r"value \(1\+2j\) is not a real number"),
        (10**400, ValueError, "value 1000.* is beyond the float64 range"),
    ],
    ids=["str", "bool", "none", "complex", "huge-int"],
)
def test_invalid_values_are_rejected_naming_the_series_and_the_step(value, error, problem):
    history = RunHistory()
    with pytest.raises(error, match=rf"^Series 'loss', step 4: {problem}"):
        history.append("loss", 4, value)
    assert "loss" not in history


def test_non_finite_values_are_recorded_exactly_and_heard():
    history = RunHistory()
    heard = []
    history.add_listener(lambda name, step, value: heard.append(value))
    history.extend("loss", [0, 1, 2], [math.nan, math.inf, -math.inf])
    values = history.series("loss").values
    assert np.isnan(values[0])
    assert values[1:].tolist() == [math.inf, -math.inf]
    assert np.isnan(heard[0])
    assert heard[1:] == [math.inf, -math.inf]


def test_series_names_must_be_strings():
    with pytest.raises(TypeError, match="A series name must be a str, but got int 3"):
        RunHistory().append(3, 0, 1.0)


def test_extend_checks_every_step_before_recording_any():
    history = RunHistory()
    with pytest.raises(ValueError, match=r"Series 'loss': step 2\.5 is not an integer"):
        history.extend("loss", [0.0, 1.0, 2.5], [1.0, 2.0, 3.0])
    assert "loss" not in history


def test_num_points_of_an_unknown_series_names_the_recorded_ones():
    history = RunHistory()
    history.append("loss", 0, 1.0)
    with pytest.raises(KeyError, match=r"No series named 'lr'; recorded series: \['loss'\]"):
        history.num_points("lr")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"window": 0}, ValueError, "Expected `window` to be at least 1, but got 0"),
        ({"window": 2.5}, TypeError, "Expected `window` to be an int, but got float 2.5"),
        ({"window": "10"}, TypeError, "Expected `window` to be an int, but got str '10'"),
        ({"max_bins": 1}, ValueError, "Expected `max_bins` to be at least 2, but got 1"),
        ({"max_bins": 0}, ValueError, "Expected `max_bins` to be at least 2, but got 0"),
        ({"max_bins": True}, TypeError, "Expected `max_bins` to be an int, but got bool True"),
    ],
    ids=["window-0", "window-float", "window-str", "max_bins-1", "max_bins-0", "max_bins-bool"],
)
def test_constructor_rejects_bad_sizes(kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        RunHistory(**kwargs)


# --- rewinds ---------------------------------------------------------------------------------------------------------


def test_a_repeated_last_step_replaces_the_last_point():
    history = RunHistory()
    history.extend("loss", [0, 1, 2], [3.0, 2.0, 1.0])
    history.append("loss", 2, 9.0)
    assert history.series("loss").values.tolist() == [3.0, 2.0, 9.0]
    assert history.num_points("loss") == 3


def _compressed_history(n_steps: int = 10_000) -> tuple[RunHistory, np.ndarray]:
    """Steps 0..n_steps-1 with distinct values, window 100 and 50 bins: most of the series is binned."""
    history = RunHistory(window=100, max_bins=50)
    values = np.sqrt(np.arange(n_steps, dtype=np.float64))
    history.extend("loss", range(n_steps), values)
    return history, values


def _bin_ranges(series) -> list[tuple[int, int]]:
    """[first, last] raw step of every row, for a series that recorded every step from 0 (counts are contiguous)."""
    ends = np.cumsum(series.counts)
    return [(int(end - count), int(end - 1)) for end, count in zip(ends, series.counts, strict=True)]


def test_rewind_inside_a_bin_drops_it_whole_with_every_later_bin():
    history, _ = _compressed_history()
    before = history.series("loss")
    ranges = _bin_ranges(before)
    straddling = next(i for i, (first, last) in enumerate(ranges) if last - first >= 10 and first > 1000)
    first, last = ranges[straddling]
    rewind = last  # inside the bin and past its mean step: the bin holds points on both sides of the rewind
    history.append("loss", rewind, -1.0)
    after = history.series("loss")
    # The bins before the straddling one are untouched, the straddling one and the rest are gone, the new point ends.
    np.testing.assert_array_equal(after.steps[:straddling], before.steps[:straddling])
    np.testing.assert_array_equal(after.values[:straddling], before.values[:straddling])
    np.testing.assert_array_equal(after.counts[:straddling], before.counts[:straddling])
    assert len(after) == straddling + 1
    assert (after.steps[-1], after.values[-1], after.counts[-1]) == (rewind, -1.0, 1)
    # The points of the straddling bin before the rewind step went with it.
    assert history.num_points("loss") == first + 1 == after.counts.sum()


def test_rewind_at_a_bin_start_loses_nothing_before_it():
    history, _ = _compressed_history()
    ranges = _bin_ranges(history.series("loss"))
    first = next(first for first, last in ranges if first > 1000 and last > first)
    history.append("loss", first, -1.0)
    assert history.num_points("loss") == first + 1
    assert history.series("loss").steps[-2] < first


def test_rewind_into_the_window_keeps_every_bin():
    history, values = _compressed_history()
    before = history.series("loss")
    n_bins = int(np.sum(before.counts > 1))
    history.append("loss", 9_950, -1.0)
    after = history.series("loss")
    np.testing.assert_array_equal(after.counts[:n_bins], before.counts[:n_bins])
    assert history.num_points("loss") == 9_951
    np.testing.assert_array_equal(after.values[-51:-1], values[9_900:9_950])


def test_rewind_into_a_gap_between_the_bins_and_the_window_keeps_the_bins():
    history = RunHistory(window=5, max_bins=50)
    history.extend("loss", range(20), np.ones(20))
    history.extend("loss", range(100, 105), np.full(5, 2.0))  # compresses steps 0..19 and 100: the window is 101..104
    history.append("loss", 50, 3.0)  # before the whole window, after every binned point of 0..19
    assert history.num_points("loss") == 21
    assert history.series("loss").steps[-1] == 50


def test_rewind_into_the_bins_then_a_long_run_stays_sorted_counted_and_right():
    history, values = _compressed_history(20_000)
    ranges = _bin_ranges(history.series("loss"))
    # The last step of a bin: inside it and past its mean step, so the bin holds points on both sides of the rewind.
    kept, rewind = next((first, last) for first, last in ranges if first > 3000 and last > first)
    new_steps = np.arange(rewind, rewind + 30_000)
    new_values = -np.sqrt(new_steps.astype(np.float64))
    history.extend("loss", new_steps, new_values)  # compresses again, through the bins the rewind left
    series = history.series("loss")
    assert np.all(np.diff(series.steps) > 0)
    assert series.counts.sum() == history.num_points("loss") == kept + len(new_steps)
    assert len(series) <= 2 * 100 + 50
    # Every row is the mean of the raw points it stands for: the old run before `kept`, then the resumed run.
    raw_steps = np.r_[np.arange(kept), new_steps].astype(np.float64)
    raw_values = np.r_[values[:kept], new_values]
    starts = np.r_[0, np.cumsum(series.counts)[:-1]]
    np.testing.assert_allclose(series.steps, np.add.reduceat(raw_steps, starts) / series.counts, rtol=1e-12)
    np.testing.assert_allclose(series.values, np.add.reduceat(raw_values, starts) / series.counts, rtol=1e-9)
    # No bin mixes the two runs: every row's values are all old (positive) or all new (negative).
    assert np.all(np.sign(np.minimum.reduceat(raw_values, starts)) == np.sign(np.maximum.reduceat(raw_values, starts)))


# --- compression ------------------------------------------------------------------------------------------------------


def test_values_near_the_float64_limit_average_without_overflow():
    history = RunHistory(window=2, max_bins=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow RuntimeWarning would fail here
        history.extend("loss", range(10), np.full(10, 1e308))
    np.testing.assert_allclose(history.series("loss").values, 1e308, rtol=1e-12)


def test_bin_means_stay_inside_their_bins_despite_rounding():
    # Four rows at one step, weighted by large counts: the float64 weighted mean rounds to 562231842666225.06 here,
    # past the bin's last step, unless it is clipped back into the bin.
    step = 562231842666225.0
    rows = Rows(
        steps=np.full(4, step),
        values=np.ones(4),
        counts=np.array([124555, 778468, 288331, 801976]),
        last=np.full(4, int(step)),
    )
    binned = bin_means(rows, 1.0)
    assert binned.steps.tolist() == [step]
    assert binned.last.tolist() == [int(step)]


def test_steps_near_2_to_the_53_stay_increasing_after_compression():
    history = RunHistory(window=2, max_bins=2)
    steps = [0, 1, 2**53 - 4, 2**53 - 3, 2**53 - 2, 2**53 - 1, 2**53]
    history.extend("loss", steps, np.ones(len(steps)))
    series = history.series("loss")
    assert np.all(np.diff(series.steps) > 0)
    assert series.counts.sum() == len(steps)


# --- damaged states --------------------------------------------------------------------------------------------------


def _saved_state() -> dict[str, Any]:
    """A state with bins and a window: window 4, max_bins 3, 100 steps of one series."""
    history = RunHistory(window=4, max_bins=3)
    history.extend("loss", range(100), np.linspace(3.0, 1.0, 100))
    return history.state_dict()


def _set(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    """A damage: set the field at ``path`` (keys and indices into the state) to ``value``."""
    *path, key, value = path_and_value

    def damage(state: dict[str, Any]) -> None:
        target = state
        for part in path:
            target = target[part]
        target[key] = value

    return damage


def _delete(*path: Any) -> Callable[[dict[str, Any]], None]:
    def damage(state: dict[str, Any]) -> None:
        target = state
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return damage


def _series_field(field: str, change: Callable[[list], list]) -> Callable[[dict[str, Any]], None]:
    def damage(state: dict[str, Any]) -> None:
        entry = state["series"]["loss"]
        entry[field] = change(entry[field])

    return damage


_LOSS = "state\\['series'\\]\\['loss'\\]"
_DAMAGES = {
    "version-1": (_set("version", 1), ValueError, "version 2, but got 1"),
    "version-str": (_set("version", "2"), ValueError, "version 2, but got '2'"),
    "missing-window": (_delete("window"), KeyError, r"state lacks \['window'\]"),
    "unknown-field": (_set("extra", 1), ValueError, r"state has unknown fields \[\"'extra'\"\]"),
    "window-0": (_set("window", 0), ValueError, r"`state\['window'\]` to be at least 1"),
    "window-str": (_set("window", "4"), TypeError, r"`state\['window'\]` to be an int"),
    "max_bins-0": (_set("max_bins", 0), ValueError, r"`state\['max_bins'\]` to be at least 2, but got 0"),
    "max_bins-1": (_set("max_bins", 1), ValueError, r"`state\['max_bins'\]` to be at least 2, but got 1"),
    "series-list": (_set("series", []), TypeError, r"state\['series'\] to be a dict, but got list"),
    "series-int-name": (_set("series", 7, {}), TypeError, "series names in state.*to be str, but got 7"),
    "entry-none": (_set("series", "loss", None), TypeError, f"{_LOSS} to be a dict, but got NoneType"),
    "missing-bin_last": (_delete("series", "loss", "bin_last"), KeyError, rf"{_LOSS} lacks \['bin_last'\]"),
    "width-0": (_set("series", "loss", "width", 0.0), ValueError, rf"{_LOSS}\['width'\] to be 0.0001 \* 2\*\*k"),
    "width-nan": (_set("series", "loss", "width", math.nan), ValueError, rf"{_LOSS}\['width'\].*but got nan"),
    "width-3e-4": (_set("series", "loss", "width", 3e-4), ValueError, rf"{_LOSS}\['width'\].*but got 0.0003"),
    "width-str": (_set("series", "loss", "width", "wide"), TypeError, rf"{_LOSS}\['width'\] to be a float"),
    "steps-not-a-list": (_set("series", "loss", "steps", "0123"), TypeError, rf"{_LOSS}\['steps'\] to be a list"),
    "values-short": (
        _series_field("values", lambda v: v[:-1]),
        ValueError,
        f"{_LOSS}: 'steps' and 'values' differ in length",
    ),
    "bin_counts-long": (
        _series_field("bin_counts", lambda v: [*v, 1]),
        ValueError,
        f"{_LOSS}: 'bin_counts' and 'bin_last' differ in length",
    ),
    "steps-decreasing": (
        _series_field("steps", lambda v: v[::-1]),
        ValueError,
        rf"{_LOSS}\['steps'\] must increase, but {_LOSS}\['steps'\]\[1\] = 98 follows 99",
    ),
    "steps-nan": (
        _set("series", "loss", "steps", 0, math.nan),
        ValueError,
        rf"{_LOSS}\['steps'\]\[0\] = nan is not fin",
    ),
    "steps-negative": (_set("series", "loss", "steps", 0, -96), ValueError, rf"{_LOSS}\['steps'\]\[0\] = -96 is neg"),
    "steps-fraction": (_set("series", "loss", "steps", 0, 96.5), ValueError, r"\[0\] = 96.5 is not an integer"),
    "steps-str": (_set("series", "loss", "steps", 0, "96"), TypeError, rf"{_LOSS}\['steps'\]\[0\] = '96' is a str"),
    "values-str": (_set("series", "loss", "values", 0, "1.0"), TypeError, rf"{_LOSS}\['values'\]\[0\] to be a float"),
    "values-none": (_set("series", "loss", "values", 0, None), TypeError, rf"{_LOSS}\['values'\]\[0\] to be a float"),
    "bin_counts-0": (_set("series", "loss", "bin_counts", 0, 0), ValueError, r"\['bin_counts'\]\[0\] to be at least 1"),
    "bin_counts-negative": (_set("series", "loss", "bin_counts", 0, -3), ValueError, r"at least 1, but got -3"),
    "bin_counts-float": (
        _set("series", "loss", "bin_counts", 0, 2.0),
        TypeError,
        r"\['bin_counts'\]\[0\] to be an int",
    ),
    "bin_steps-nan": (
        _set("series", "loss", "bin_steps", 0, math.nan),
        ValueError,
        rf"{_LOSS}\['bin_steps'\]\[0\] = nan lies outside its bin's steps",
    ),
    "bin_steps-past-bin_last": (
        _set("series", "loss", "bin_steps", 0, 1e6),
        ValueError,
        rf"{_LOSS}\['bin_steps'\]\[0\] = 1000000.0 lies outside",
    ),
    "bin_last-decreasing": (
        _series_field("bin_last", lambda v: v[::-1]),
        ValueError,
        rf"{_LOSS}\['bin_last'\] must increase",
    ),
    "bin_counts-overfull": (
        _series_field("bin_counts", lambda v: [v[0] + 1000, *v[1:]]),
        ValueError,
        rf"{_LOSS}\['bin_counts'\]\[0\] = \d+ is more than the \d+ steps of its bin",
    ),
    "window-overlaps-bins": (
        _series_field("steps", lambda v: [0, *v[1:]]),
        ValueError,
        rf"{_LOSS}\['steps'\]\[0\] = 0 is not after the last bin's step",
    ),
    "window-overfull": (
        _set("window", 2),
        ValueError,
        rf"{_LOSS}\['steps'\] holds 4 points, but a window of 2 keeps fewer than 4",
    ),
    "bins-over-budget": (_set("max_bins", 2), ValueError, rf"{_LOSS} holds 3 bins, more than max_bins = 2"),
}


def test_the_saved_state_used_for_damages_is_valid_and_has_bins_and_a_window():
    state = _saved_state()
    entry = state["series"]["loss"]
    assert len(entry["bin_last"]) == 3
    assert len(entry["steps"]) == 4
    RunHistory().load_state_dict(state)


@pytest.mark.parametrize(("damage", "error", "message"), list(_DAMAGES.values()), ids=list(_DAMAGES))
def test_a_damaged_state_is_rejected_naming_the_field_and_changes_nothing(damage, error, message):
    history = RunHistory(window=7, max_bins=5)
    history.extend("val_loss", range(30), np.linspace(2.0, 1.0, 30))
    before = pickle.dumps(history.state_dict())
    state = _saved_state()
    damage(state)
    with pytest.raises(error, match=message):
        history.load_state_dict(state)
    assert pickle.dumps(history.state_dict()) == before
    assert (history.window, history.max_bins) == (7, 5)


# --- fuzz: random appends, rewinds and round trips against a plain reference ---------------------------------------


class _Reference:
    """Every raw point the history should stand for, as plain dicts: series name -> {step: value}.

    A rewind to ``step`` drops every row of the history's view that holds a point at or after ``step``, which is
    the documented rule: the window's points after it, and the bins after it, with a straddling bin whole.
    """

    def __init__(self) -> None:
        self.points: dict[str, dict[int, float]] = {}

    def append(self, history: RunHistory, name: str, step: int, value: float) -> None:
        points = self.points.setdefault(name, {})
        if points and step <= max(points):
            points = self.points[name] = self._before(history, name, step)
        points[step] = value

    def _before(self, history: RunHistory, name: str, step: int) -> dict[int, float]:
        items = list(self.points[name].items())
        kept, start = {}, 0
        for count in history.series(name).counts.tolist():
            row = items[start : start + count]
            start += count
            if row[-1][0] < step:
                kept.update(row)
        return kept

    def check(self, history: RunHistory, window: int, max_bins: int) -> None:
        assert history.names() == sorted(self.points)
        for name, points in self.points.items():
            series = history.series(name)
            steps = np.fromiter(points, dtype=np.float64)
            values = np.fromiter(points.values(), dtype=np.float64)
            assert len(series) <= 2 * window + max_bins
            assert np.all(np.diff(series.steps) > 0)
            assert series.counts.sum() == len(points) == history.num_points(name)
            starts = np.r_[0, np.cumsum(series.counts)[:-1]].astype(np.int64)
            np.testing.assert_allclose(series.steps, np.add.reduceat(steps, starts) / series.counts, rtol=1e-12)
            exact = series.counts == 1  # the window, and one-point bins: the very points
            np.testing.assert_array_equal(series.values[exact], values[starts[exact]])
            self._check_bin_values(series, values, starts)
            last_step, last_value = history.last(name)
            assert last_step == steps[-1]
            np.testing.assert_array_equal(last_value, values[-1])  # NaN-aware

    @staticmethod
    def _check_bin_values(series, values: np.ndarray, starts: np.ndarray) -> None:
        for start, count, mean in zip(starts, series.counts, series.values, strict=True):
            if count == 1:
                continue  # checked exactly
            raw = values[start : start + count]
            finite = raw[np.isfinite(raw)]
            if len(finite) == 0:
                assert np.isnan(mean)
            elif len(finite) == count:
                assert mean == pytest.approx(finite.mean(), rel=1e-9)
            else:  # non-finite points are left out, with sub-bins weighted by their full counts: between the extremes
                assert finite.min() - 1e-9 <= mean <= finite.max() + 1e-9


def _random_value(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.02:
        return rng.choice([math.nan, math.inf, -math.inf])
    return rng.uniform(-10.0, 10.0)


def _round_trip(history: RunHistory) -> RunHistory:
    """Through pickle (what a checkpoint does) into a history built with other sizes: the state's sizes win."""
    state = pickle.loads(pickle.dumps(history.state_dict()))
    restored = RunHistory(window=3, max_bins=2)
    restored.load_state_dict(state)
    assert pickle.dumps(restored.state_dict()) == pickle.dumps(history.state_dict())
    return restored


@pytest.mark.parametrize(("seed", "window", "max_bins"), [(0, 8, 4), (1, 3, 2), (2, 25, 6)])
def test_random_appends_rewinds_and_round_trips_match_a_plain_reference(seed, window, max_bins):
    rng = random.Random(seed)
    history, reference, heard = RunHistory(window=window, max_bins=max_bins), _Reference(), []
    history.add_listener(lambda *point: heard.append(point))
    for _ in range(2_000):
        name = rng.choice(["loss", "loss", "val_loss"])
        last = history.last(name)
        roll = rng.random()
        if roll < 0.03:
            history = _round_trip(history)
            history.add_listener(lambda *point: heard.append(point))
            continue
        if last is None or roll > 0.1:
            step = 0 if last is None else last[0] + rng.choice([1, 1, 1, 2, 7, 300])
        else:
            step = rng.randint(0, last[0])  # a rewind: into the window, the bins, or onto the last step
        value = _random_value(rng)
        reference.append(history, name, step, value)  # first: it reads the rows the rewind is about to drop
        heard.clear()
        history.append(name, step, value)
        assert heard == [(name, step, value)]  # the same float object, so a NaN compares equal too
        reference.check(history, window, max_bins)
