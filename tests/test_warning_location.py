"""curvecast's warnings point at the user's own line (their ``trainer.fit``), not at a line inside curvecast, Lightning
or torch."""

from __future__ import annotations

import inspect
import warnings

from curvecast import Curvecast
from curvecast.failsafe import CurvecastWarning
from run_helpers import tiny_trainer
from tiny_models import CurveModule


def test_a_warning_from_inside_a_fit_points_at_the_fit_call(tmp_path):
    trainer = tiny_trainer(tmp_path, [Curvecast()], 5, logger=False)  # no TensorBoardLogger: curvecast warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_line = inspect.currentframe().f_lineno + 1
        trainer.fit(CurveModule(steps=5))
    ours = [w for w in caught if issubclass(w.category, CurvecastWarning)]
    assert ours, "expected curvecast to warn about the missing TensorBoardLogger"
    assert {(w.filename, w.lineno) for w in ours} == {(__file__, fit_line)}
