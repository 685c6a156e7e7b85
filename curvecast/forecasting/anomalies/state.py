"""Stateful: the streaming state of a detector's parts, saved and restored as plain Python values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["Stateful", "load_parts"]


class Stateful:
    """A part whose streaming state is the attributes named in ``STATE``: scalars, ``None`` and lists of floats.

    Plain values only, so that a checkpoint loads with torch ``weights_only=True`` and survives JSON.
    """

    STATE: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        """The state as plain Python values (lists are copied)."""
        return {name: _plain(getattr(self, name)) for name in self.STATE}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a missing key is a ``KeyError`` and changes nothing."""
        missing = [name for name in self.STATE if name not in state]
        if missing:
            raise KeyError(f"`state` of the {type(self).__name__} lacks the keys {missing}")
        for name in self.STATE:
            value = state[name]
            setattr(self, name, [float(x) for x in value] if isinstance(value, list) else value)


def load_parts(parts: Mapping[str, Stateful], state: Mapping[str, Any], owner: str) -> None:
    """Load each part from ``state[name]``, after checking that every name is there (so a bad state changes nothing
    that was not loaded from it)."""
    missing = [name for name in parts if name not in state]
    if missing:
        raise KeyError(f"`state` lacks the {owner} keys {missing}")
    for name, part in parts.items():
        part.load_state_dict(state[name])


def _plain(value: object) -> object:
    return list(value) if isinstance(value, list) else value
