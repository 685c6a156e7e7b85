"""The live cadence forecasts a monitored metric in its own direction (``mode``), e.g. a rising accuracy."""

import numpy as np

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
