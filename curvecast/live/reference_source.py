"""Where a live run's reference runs come from: ``Curvecast(references=...)``.

Three sources are taken: ``Reference`` objects as they are; a log directory of finished runs of the same recipe
(``curvecast.logreaders.reference_runs``); or an Optuna study, whose completed trials are read at the start of each fit,
so a trial sees every trial finished before it. A trial's curve is the one ``ForecastPruningCallback`` stored for the
monitor (``CURVE_ATTR``, with its planned LRs); else the values the trial reported (``trial.report``) when the study
optimizes in the monitor's direction, since those are then the monitor, or something that moves with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curvecast.failsafe import warn_once
from curvecast.forecasting.references import MAX_REFERENCES, Reference, check_references
from curvecast.integrations.trial_curves import CURVE_ATTR, TrialCurve
from curvecast.logreaders.reference_runs import references_from_logs

__all__ = ["ReferenceSource", "check_reference_source", "load_references", "references_for_fit", "study_references"]

ReferenceSource = str | os.PathLike | Sequence[Reference] | Any  # Any: an ``optuna.Study`` (optuna is optional)


def _is_study(source: object) -> bool:
    return hasattr(source, "get_trials") and hasattr(source, "direction")


def check_reference_source(source: ReferenceSource | None) -> ReferenceSource | None:
    """The source as given (references as a list), or an error naming what is wrong with it."""
    if source is None or _is_study(source):
        return source
    if isinstance(source, (str, os.PathLike)):
        # A directory not there yet is no error: the first run of a recipe may name the one its logs will go to.
        if Path(source).exists() and not Path(source).is_dir():
            raise ValueError(f"Expected `references` to be a directory of finished runs, but {source} is not one")
        return source
    if isinstance(source, Sequence):
        return check_references(source)
    raise TypeError(
        "Expected `references` to be a log directory, a list of `Reference` objects or an Optuna study, but got "
        f"{type(source).__name__}"
    )


def load_references(
    source: ReferenceSource | None, monitor: str, mode: str, exclude: tuple[Path, ...] = ()
) -> tuple[list[Reference], list[str]]:
    """The references of ``source`` for ``monitor``, and what was left out, with why.

    Args:
        exclude: directories of the live run's own logs, never read as a reference of itself.
    """
    if source is None:
        return [], []
    if _is_study(source):
        return study_references(source, monitor, mode)
    if isinstance(source, (str, os.PathLike)):

        found = references_from_logs(source, monitor, exclude)
        return found.references, found.skipped
    return list(source), []


def study_references(study: Any, monitor: str, mode: str) -> tuple[list[Reference], list[str]]:
    """The latest ``MAX_REFERENCES`` completed trials of an Optuna ``study`` as references for ``monitor`` (see the
    module's note), and the trials left out, with why."""
    same_direction = str(getattr(study.direction, "name", study.direction)).upper() == (
        "MINIMIZE" if mode == "min" else "MAXIMIZE"
    )
    references, skipped = [], []
    for trial in study.get_trials(deepcopy=False):
        if getattr(trial.state, "name", "") != "COMPLETE":
            continue
        curve = TrialCurve.from_attr(trial.user_attrs.get(CURVE_ATTR), monitor)
        reference = curve.reference() if curve is not None else None
        if reference is None and same_direction and len(trial.intermediate_values) > 0:
            steps = np.array(sorted(trial.intermediate_values), dtype=np.float64)
            values = np.array([trial.intermediate_values[int(s)] for s in steps], dtype=np.float64)
            try:
                reference = Reference(steps, values)
            except ValueError as error:  # too few points, negative steps
                skipped.append(f"trial {trial.number}: {error}")
                continue
        if reference is None:
            skipped.append(f"trial {trial.number}: no curve of `{monitor}` stored or reported")
        else:
            references.append(reference)
    if len(references) > MAX_REFERENCES:  # trials come in the order they started: the latest are last
        skipped.append(f"{len(references) - MAX_REFERENCES} earlier trials: past the {MAX_REFERENCES} latest")
    return references[-MAX_REFERENCES:], skipped


def references_for_fit(source: ReferenceSource | None, trainer: Any, monitor: str, mode: str) -> tuple[Reference, ...]:
    """The references at the start of a fit, leaving out the run's own log directories; a source that gives none is
    one warning (the run forecasts without them)."""
    if source is None:
        return ()
    own = tuple(Path(d) for d in (getattr(lg, "log_dir", None) for lg in trainer.loggers) if isinstance(d, str))
    references, skipped = load_references(source, monitor, mode, exclude=own)
    if not references:
        why = "; ".join(skipped[:3]) + (f"; ... ({len(skipped) - 3} more)" if len(skipped) > 3 else "")
        warn_once(f"curvecast: no reference run of `{monitor}` found in `references`; forecasting without them"
                  + (f" ({why})" if why else ""), key=f"no-references:{source}")  # fmt: skip
    return tuple(references)
