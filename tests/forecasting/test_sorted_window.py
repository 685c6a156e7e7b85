"""SortedWindow: the noise of a window kept sorted equals sigma_of_diffs of the window, bit for bit, or defers to it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curvecast.forecasting.anomalies.sorted_window import SortedWindow
from curvecast.forecasting.anomalies.stats import median, sigma_of_diffs


def windows(seed: int) -> list[list[float]]:
    """Windows of 1-128 values: continuous, rounded (ties), a few distinct values with signed zeros, tiny and huge."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (1, 2, 3, 4, 5, 8, 9, 16, 31, 32, 33, 127, 128):
        x = rng.standard_normal(n)
        out += [x.tolist(), np.round(x, 1).tolist(), (1e-9 * x).tolist(), (1e150 * x).tolist()]
        out.append(rng.choice([-1.0, -0.0, 0.0, 1.0, 2.5], size=n).tolist())
    return out


@pytest.mark.parametrize("seed", range(5))
def test_sigma_is_sigma_of_diffs_or_defers(seed: int) -> None:
    deferred = 0
    for values in windows(seed):
        sigma = SortedWindow(values).sigma()
        if sigma is None:  # all finite here: only a MAD of 0 defers
            deferred += 1
            centre = median(values)
            assert median([abs(v - centre) for v in values]) == 0.0
        else:
            assert sigma == sigma_of_diffs(values)
    assert deferred < len(windows(seed)) / 2  # most windows are answered without the sorts


def test_a_capped_stream_stays_sorted_and_exact() -> None:
    rng = np.random.default_rng(7)
    window, kept, cap = SortedWindow(), [], 128
    for x in np.round(rng.standard_t(3, 3000), 2).tolist():
        dropped = kept[0] if len(kept) >= cap else None
        kept = [*kept, x][-cap:]
        window.add(x, dropped)
        assert window.values == sorted(kept)
        sigma = window.sigma()
        assert sigma is None or sigma == sigma_of_diffs(kept)


def test_non_finite_values_and_an_empty_window_defer() -> None:
    assert SortedWindow().sigma() is None
    assert SortedWindow([1.0, math.inf, -2.0, 0.5]).sigma() is None
    assert SortedWindow([2.0, 2.0, 2.0, 5.0]).sigma() is None  # MAD 0: the mean absolute deviation, in window order
