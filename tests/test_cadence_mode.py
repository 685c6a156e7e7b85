"""The live cadence forecasts a monitored metric in its own direction (``mode``), e.g. a rising accuracy."""

import numpy as np
import pytest

from curvecast.history import RunHistory
from curvecast.live.cadence import ForecastCadence


def test_a_rising_accuracy_is_forecast_rising():
    history = RunHistory()
    for step in range(1, 301):
        history.append("val_acc", step, 0.9 - 0.5 * (step / 10.0) ** -0.7)
    reports = {}
    for mode in ("max", "min"):
        cadence = ForecastCadence(history, lambda: None, lambda: 1000, "val_acc", 0.88, 10, False, None, mode=mode)
        (reports[mode],) = cadence.finish()
    up, down = reports["max"].forecast, reports["min"].forecast
    assert up.ok
    assert up.mode == "max"
    last = history.series("val_acc").values[-1]
    assert up.final > last > down.final  # read as a loss, the same curve would be forecast falling
    assert up.prob_beyond(0.86) > 0.5 > up.prob_beyond(0.9)
    assert np.isfinite(up.interval(0.8)).all()


def test_the_direction_and_range_of_a_score_are_read_from_its_name():
    from curvecast import Curvecast

    assert Curvecast(monitor="val_acc").mode == "max"
    assert Curvecast(monitor="val_loss").mode == "min"
    assert Curvecast().mode == "min"
    assert Curvecast(monitor="val_acc", mode="min").mode == "min"  # what the user says wins
    assert Curvecast("val_loss").monitor == "val_loss"  # the monitor alone may be positional
    with pytest.raises(TypeError, match="positional argument"):
        Curvecast("val_loss", "min", 2.5, 50)  # the rest are keyword-only: a positional call cannot change meaning

    history = RunHistory()
    for step in range(1, 301):  # an accuracy nearing 1: unbounded, its forecast could cross it
        history.append("val_acc", step, 0.995 - 0.5 * (1 + step / 10.0) ** -0.7)
    # 100x past the data (farther, at 100,000 steps, the forecast is declined as too uncertain)
    inferred = ForecastCadence(history, lambda: None, lambda: 30_000, "val_acc", None, 10, False, None, mode="max")
    open_ended = ForecastCadence(history, lambda: None, lambda: 30_000, "val_acc", None, 10, False, None, mode="max",
                                 bounds=(None, None))  # fmt: skip
    (bounded,) = inferred.finish()
    (unbounded,) = open_ended.finish()
    assert bounded.forecast.ok
    assert bounded.forecast.interval(0.95)[1] <= 1.0
    assert unbounded.forecast.interval(0.95)[1] > 1.0
