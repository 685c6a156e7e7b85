"""The bundle's checkpoint state: the run's history once, then each stateful part under its own name.

Every part is restored on its own: a part whose saved state cannot be read is a warning and a fresh start for that
part alone, never a failed resume, and the loss history survives any of them.
"""

from __future__ import annotations

from typing import Any

from curvecast.failsafe import warn_once
from curvecast.history import RunHistory

__all__ = ["STATE_VERSION", "bundle_state", "restore_bundle_state"]

STATE_VERSION = 2
_UNREADABLE = (KeyError, ValueError, TypeError, AttributeError)  # what a damaged or foreign state raises


def bundle_state(history: RunHistory, parts: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint state: ``history`` and every part's ``state_dict()`` by name."""
    state = {"version": STATE_VERSION, "history": history.state_dict()}
    for name, part in parts.items():
        state[name] = part.state_dict()
    return state


def restore_bundle_state(history: RunHistory, parts: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """Restore ``history`` and the parts from ``state``; returns the names of the parts that start afresh (each told
    in a warning), the caller replacing them with new ones."""
    try:
        history.load_state_dict(state["history"])
    except _UNREADABLE as error:
        warn_once(f"curvecast: the checkpoint's curvecast history could not be restored ({error}); starting afresh")
        history.load_state_dict(RunHistory().state_dict())
    fresh = []
    for name, part in parts.items():
        if name not in state:
            continue
        try:
            part.load_state_dict(state[name])
        except _UNREADABLE as error:
            warn_once(f"curvecast: the checkpoint's curvecast state of {name!r} could not be restored ({error}); "
                      "that part starts afresh")  # fmt: skip
            fresh.append(name)
    return fresh
