"""find_runs: the run directories under a log directory (a sweep, the versions of a Lightning logger)."""

from __future__ import annotations

from pathlib import Path

from curvecast.logreaders.events import is_event_name
from curvecast.logreaders.files import find_files

__all__ = ["find_runs"]

_SUBRUNS = ("curvecast_forecast", "curvecast_summary")  # written inside a run by TensorBoardReporter


def find_runs(directory: Path) -> list[Path]:
    """The run directories under ``directory``, sorted (a directory holding a log of its own is a run)."""
    found, _ = find_files(directory, lambda name: is_event_name(name) or name == "metrics.csv")
    runs = set()
    for file in found:
        parts = file.parent.relative_to(directory).parts
        if not any(part.startswith(_SUBRUNS) for part in parts):
            runs.add(file.parent)
    return sorted(runs)
