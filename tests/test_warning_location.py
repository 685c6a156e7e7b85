"""curvecast's warnings point at the user's own line (their ``trainer.fit``), not at a line inside curvecast, Lightning
or torch."""

from __future__ import annotations

import inspect
import os
import warnings

import pytest
import pytorch_lightning as pl

import curvecast
from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from run_helpers import tiny_trainer
from tiny_models import CurveModule, TinyRegression, loader


def test_a_warning_from_inside_a_fit_points_at_the_fit_call(tmp_path):
    csv = pl.loggers.CSVLogger(str(tmp_path))  # a logger that gets no forecasts: curvecast warns
    trainer = tiny_trainer(tmp_path, [Curvecast()], 5, logger=csv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_line = inspect.currentframe().f_lineno + 1
        trainer.fit(CurveModule(steps=5))
    ours = [w for w in caught if issubclass(w.category, CurvecastWarning)]
    assert ours, "expected curvecast to warn that the CSVLogger gets no forecasts"
    assert {(w.filename, w.lineno) for w in ours} == {(__file__, fit_line)}


@pytest.mark.parametrize("kind", ["automatic", "accumulation", "manual"])
def test_a_healthy_run_with_every_part_on_sets_off_no_warning_at_a_line_of_curvecast(tmp_path, kind):
    """Nothing curvecast does in a run sets off a warning of its own or of torch's at one of its lines (torch warns
    when a tensor that requires grad is read as a number: the non-finite guard, on with early stopping, reads the
    loss before backward). Accumulation takes the micro-batch noise scale; manual optimization hands the loss as the
    module returns it."""
    package = os.path.join(os.path.dirname(os.path.realpath(curvecast.__file__)), "")
    bundle = Curvecast(early_stopping=True, target=0.01, forecast_every=10, background=False)
    assert bundle.finite_guard is not None
    trainer = tiny_trainer(tmp_path, [bundle], 40, accumulate_grad_batches=2 if kind == "accumulation" else 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kind == "manual":
            trainer.fit(TinyRegression(manual=True), loader())
        else:
            trainer.fit(CurveModule(steps=40))
    at = [(os.path.realpath(w.filename), w.lineno, str(w.message)) for w in caught]
    inside = [warning for warning in at if warning[0].startswith(package)]
    assert not inside
