"""``benchmarks/calibrate.py --set NAME=VALUE`` scores another value of a constant only if it reaches every module
that imported the constant: each forecasting module that imports from ``calibration.py`` is in its list."""

from __future__ import annotations

import ast
from pathlib import Path

import curvecast.forecasting

FORECASTING = Path(curvecast.forecasting.__file__).parent
CALIBRATE = Path(__file__).resolve().parents[1] / "benchmarks" / "calibrate.py"


def _overridden_modules() -> set[str]:
    for node in ast.walk(ast.parse(CALIBRATE.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "OVERRIDDEN_MODULES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("benchmarks/calibrate.py has no OVERRIDDEN_MODULES")


def _importers_of_calibration() -> set[str]:
    importers = set()
    for path in FORECASTING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "curvecast.forecasting.calibration":
                importers.add(path.stem)
    return importers


def test_every_module_that_imports_a_calibration_constant_is_overridden_by_calibrate():
    importers = _importers_of_calibration()
    assert {"forecaster", "family_fit", "flat"} <= importers  # the scan sees them
    assert importers <= _overridden_modules()
