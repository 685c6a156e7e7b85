"""A spike of a loss at or through zero is a warning only where it stands clear of the loss's own departures
(``excursions.py``): a REINFORCE surrogate whose policy has turned sharp sits within 0.003 of 0 save an exploring
batch every 5-30 points, 0.1 above or below it, and each batch above was warned of as a spike ("loss spiked to 0.1,
up from the expected (-0.0001)"), a ratio to a level near 0 being any number at all. A lone spike out of a quiet
series, a spike twice the size of the batches before it, and a NaN are still reported at their own step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curvecast.forecasting import AnomalyDetector
from curvecast.forecasting.anomalies.excursions import KEPT, like, note

N = 600


def quiet(seed: int) -> list[float]:
    """A loss converged about 0: greedy batches within 0.003 of it (a sharp policy's surrogate)."""
    return (0.003 * np.random.default_rng(seed).standard_normal(N)).tolist()


def exploring(seed: int, every: int) -> list[float]:
    """``quiet`` with an exploring batch every ``every // 2`` to ``2 * every`` points from step 40, 0.08-0.16 above or
    below 0."""
    return explored(seed, every)[0]


def explored(seed: int, every: int) -> tuple[list[float], list[int]]:
    """``exploring(seed, every)`` and the steps of its exploring batches."""
    rng = np.random.default_rng(seed)
    loss, at, steps = quiet(seed), 40, []
    while at < N:
        loss[at] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.16))
        steps.append(at)
        at += int(rng.integers(every // 2, 2 * every))
    return loss, steps


def events(loss: list[float], kind: str = "spike") -> list[tuple[int, str]]:
    det = AnomalyDetector("loss")
    return [(e.step, e.severity) for s, v in enumerate(loss) for e in det.update(s, v) if e.kind == kind]


@pytest.mark.parametrize("every", [10, 25])
def test_exploring_batches_at_a_steady_rate_are_notes(every: int) -> None:
    """Seeds 0-5: 19-24 (every 10) and 5-12 (every 25) spike warnings a run before, none now past the first two
    batches (one or two departures are no rate yet: the first batch above 0 is a lone spike so far); the batches
    above 0 are still noted."""
    late = {}
    for seed in range(6):
        loss, steps = explored(seed, every)
        spikes = events(loss)
        assert len(spikes) >= 5, seed
        late[seed] = [e for e in spikes if e[1] != "info" and e[0] > steps[1]]
    assert late == dict.fromkeys(late, [])


def test_a_lone_spike_out_of_a_quiet_near_zero_loss_is_a_warning_at_its_step() -> None:
    for seed in range(3):
        loss = quiet(seed)
        loss[400] = 0.15
        assert events(loss) == [(400, "warning")], seed


def test_a_spike_twice_the_size_of_the_exploring_batches_is_a_warning() -> None:
    """The batches before it are the yardstick: one far above them (a growing instability) is still warned of."""
    for seed in range(3):
        loss = exploring(seed, 15)
        loss[500] = 0.6
        assert (500, "warning") in events(loss), seed


def test_a_nan_among_exploring_batches_is_critical_at_its_step() -> None:
    loss = exploring(0, 10)
    loss[450] = math.nan
    assert events(loss, "nonfinite") == [(450, "critical")]


def test_the_departures_kept_are_bounded_and_the_largest_stay() -> None:
    """A burst of small departures never pushes out the large ones a spike is measured against (O(1) memory)."""
    kept: list[float] = []
    note(kept, 0, 0.1)
    note(kept, 5, 0.12)
    for n in range(10, 100):
        note(kept, n, 0.003)
    assert len(kept) == 2 * KEPT
    assert like(kept, 100, 0.2) == 2
    assert like(kept, 400, 0.2) == 0  # older than MEMORY_POINTS: forgotten


def test_the_departures_are_saved_and_an_older_state_without_them_loads() -> None:
    loss = exploring(0, 10)
    det = AnomalyDetector("loss")
    for s, v in enumerate(loss[:500]):
        det.update(s, v)
    state = det.state_dict()
    assert state["spike"]["excursions"]
    again = AnomalyDetector("loss")
    again.load_state_dict(state)
    older = AnomalyDetector("loss")
    older.load_state_dict({**state, "spike": {k: v for k, v in state["spike"].items() if k != "excursions"}})
    rest = list(enumerate(loss))[500:]
    assert [e for s, v in rest for e in again.update(s, v)] == [e for s, v in rest for e in det.update(s, v)]
    assert older.checks["spike"].excursions == []
