"""Curvecast's arguments: a value that cannot work is a clear error at construction, not a silent no-op later."""

from __future__ import annotations

import re

import numpy as np
import pytest

from curvecast import Curvecast

BUDGET = "Expected `forecast_budget` to lie in (0, 1] or be None,"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": "x"}, ValueError, "Expected `target` to be a finite number or None, but got 'x'"),
        ({"target": float("nan")}, ValueError, "Expected `target` to be a finite number or None, but got nan"),
        ({"target": float("inf")}, ValueError, "Expected `target` to be a finite number or None, but got inf"),
        ({"target": True}, ValueError, "Expected `target` to be a finite number or None, but got True"),
        ({"forecast_every": 1.5}, ValueError, "Expected `forecast_every` to be a positive int, but got 1.5"),
        ({"forecast_every": 0}, ValueError, "Expected `forecast_every` to be a positive int, but got 0"),
        ({"monitor": 3}, TypeError, "Expected `monitor` to be a metric's name or None, but got 3"),
        ({"monitor": ""}, TypeError, "Expected `monitor` to be a metric's name or None, but got ''"),
        ({"target": 10**400}, ValueError, "Expected `target` to be a finite number or None, but got 1000000000"),
        ({"forecast_budget": "0.1"}, ValueError, f"{BUDGET} but got '0.1'"),
        ({"forecast_budget": [0.1]}, ValueError, f"{BUDGET} but got [0.1]"),
        ({"forecast_budget": True}, ValueError, f"{BUDGET} but got True"),
        ({"background": "no"}, TypeError, "Expected `background` to be True or False, but got 'no' (str)"),
        ({"background": None}, TypeError, "Expected `background` to be True or False, but got None (NoneType)"),
        ({"background": 0}, TypeError, "Expected `background` to be True or False, but got 0 (int)"),
    ],
)
def test_a_value_that_cannot_work_is_an_error_naming_it(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Curvecast(**kwargs)


def test_numpy_numbers_are_numbers():
    bundle = Curvecast(target=np.float32(0.5), forecast_every=np.int64(20))
    assert (bundle.target, bundle.forecast_every) == (0.5, 20)
    assert isinstance(bundle.target, float)
    assert isinstance(bundle.forecast_every, int)


def test_numpy_bools_are_bools():
    assert Curvecast(background=np.bool_(False)).background is False
