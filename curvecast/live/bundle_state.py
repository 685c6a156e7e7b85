"""The bundle's checkpoint state: the run's history once, then each stateful part under its own name.

Every part is restored on its own: a part whose saved state cannot be read is a warning and a fresh start for that
part alone, never a failed resume, and the loss history survives any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curvecast.failsafe import warn_once
from curvecast.history import RunHistory

__all__ = ["MONITOR_PARTS", "STATE_VERSION", "bundle_state", "restore_bundle_state", "restore_other_monitors_state"]

STATE_VERSION = 2
MONITOR_PARTS = frozenset({"watch", "early_stopping"})  # the parts whose state is of one monitor
# What a damaged or foreign state raises: besides the KeyError, TypeError and ValueError of the checks, whatever a value
# of the wrong kind sets off where a part uses it (int(inf): OverflowError; a tensor where a number belongs:
# RuntimeError). None of it may fail the resume.
_UNREADABLE = Exception


def bundle_state(history: RunHistory, parts: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint state: ``history`` and every part's ``state_dict()`` by name."""
    state = {"version": STATE_VERSION, "history": history.state_dict()}
    for name, part in parts.items():
        state[name] = part.state_dict()
    return state


def restore_bundle_state(history: RunHistory, parts: dict[str, Any], state: Any) -> list[str]:
    """Restore ``history`` and the parts from ``state``; returns the names of the parts that start afresh (each told
    in a warning), the caller replacing them with new ones.

    A part's ``load_state_dict`` must check the whole of its state before it assigns any of it, so that a part whose
    state is refused is left as it was; anything it raises is such a refusal, never a failed resume.
    """
    if not isinstance(state, Mapping):
        warn_once(f"curvecast: the checkpoint's curvecast state could not be restored (TypeError: Expected a dict, but "
                  f"got {type(state).__name__}); the history and every part ({', '.join(map(repr, parts))}) stay as "
                  "they are (new, in a resumed run)")  # fmt: skip
        return []
    try:
        history.load_state_dict(state["history"])
    except _UNREADABLE as error:
        warn_once(f"curvecast: the checkpoint's curvecast history could not be restored ({_text(error)}); "
                  "starting afresh")  # fmt: skip
        history.load_state_dict(RunHistory().state_dict())
    fresh = []
    for name, part in parts.items():
        if name not in state:
            continue
        try:
            part_state = state[name]
            if not isinstance(part_state, Mapping):
                raise TypeError(f"Expected a dict, but got {type(part_state).__name__}")
            part.load_state_dict(part_state)
        except _UNREADABLE as error:
            warn_once(f"curvecast: the checkpoint's curvecast state of {name!r} could not be restored "
                      f"({_text(error)}); that part starts afresh")  # fmt: skip
            fresh.append(name)
    return fresh


def restore_other_monitors_state(
    states: Any, own_key: str, history: RunHistory, parts: dict[str, Any], monitor: str
) -> None:
    """From the checkpoint's callback ``states`` that hold none under ``own_key`` but one bundle's state of another
    monitor: restore what does not depend on the monitor (the history, the sensors), and say what was dropped
    (Lightning would drop it all, silently). Several bundles' states: no telling which one this was, nothing."""
    if not isinstance(states, Mapping) or own_key in states:
        return
    prefix = own_key.split("{", 1)[0] + "{"
    foreign = [key for key in states if isinstance(key, str) and key.startswith(prefix)]
    if len(foreign) != 1:
        return
    key = foreign[0]
    restore_bundle_state(history, {name: p for name, p in parts.items() if name not in MONITOR_PARTS}, states[key])
    series = history.names()
    points = sum(history.num_points(name) for name in series)
    has_monitor = "with" if monitor in series else "without"
    warn_once(
        f"curvecast: resumed with monitor={monitor!r} from a checkpoint whose curvecast state is under {key}: kept "
        f"the history ({points} points of {len(series)} series, {has_monitor} {monitor!r}) and the sensors' state; "
        "the anomaly detectors and the early-stopping count of the other monitor were dropped and start afresh.",
        key="other-monitor",
    )


def _text(error: Exception) -> str:
    """The error as a warning quotes it (a KeyError's ``str`` is its message in quotes)."""
    message = error.args[0] if isinstance(error, KeyError) and len(error.args) == 1 else error
    return f"{type(error).__name__}: {message}"
