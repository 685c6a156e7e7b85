"""TimingWindow.summary: the window's statistics in one pass, the same as each taken on its own."""

from __future__ import annotations

import math
import random

import pytest

from curvecast.callbacks.measures.throughput_stats import StepTiming, TimingWindow, percentile


def test_summary_agrees_with_each_statistic_taken_alone():
    rng = random.Random(0)
    window = TimingWindow(size=100)
    for _ in range(130):  # past the window's size: the oldest 30 left out of both
        window.add(StepTiming(rng.uniform(0, 0.01), rng.uniform(0.01, 0.02), rng.uniform(0, 0.005), rng.randint(8, 64),
                              rng.uniform(0, 0.01), rng.uniform(0, 0.002)))  # fmt: skip
    summary = window.summary()
    kept = list(window.steps)
    seconds = sum(s.total for s in kept)
    assert summary["samples_per_sec"] == pytest.approx(sum(s.samples for s in kept) / seconds)
    assert summary["data_wait_fraction"] == pytest.approx(sum(s.data_wait for s in kept) / seconds)
    assert summary["seconds"] == pytest.approx(window.seconds())
    for key, field in (("step_time", "total"), ("data_wait", "data_wait"), ("compute_time", "compute"),
                       ("optimizer_time", "optimizer")):  # fmt: skip
        assert summary[key] == pytest.approx(window.median(field)), key
    assert summary["step_time_p90"] == pytest.approx(percentile([s.total for s in kept], 90))


def test_an_empty_window_summarises_to_nan():
    assert all(math.isnan(v) for v in TimingWindow().summary().values())
