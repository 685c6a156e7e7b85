"""Stateful: the streaming state of a detector's parts, saved and restored as plain Python values.

A saved state is read back field by field against what the part's fresh state holds there (see
:meth:`Stateful.read_state`): a damaged checkpoint is refused with the field named, and nothing changes, instead of
loading a value that fails later or switches a check off.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from curvecast.state_checks import (
    MAX_WHOLE,
    checked_bool,
    checked_mapping,
    checked_real,
    checked_reals,
    checked_whole,
    describe,
    require_keys,
)

__all__ = ["Stateful", "load_parts"]

# The state of each Stateful class's first instance as built: what each field may hold follows from it.
_FRESH: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


class _RecordsFresh(type):
    """Records the fresh state of a class's first instance, once its ``__init__`` has run (any subclass's too)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        part = super().__call__(*args, **kwargs)
        if cls not in _FRESH:
            _FRESH[cls] = {name: _plain(getattr(part, name, None)) for name in getattr(cls, "STATE", ())}
        return part


class Stateful(metaclass=_RecordsFresh):
    """A part whose streaming state is the attributes named in ``STATE``: scalars, ``None`` and lists of floats.

    Plain values only, so that a checkpoint loads with torch ``weights_only=True`` and survives JSON. What a saved
    field may hold follows from the field's fresh value (see :meth:`read_state`).
    """

    STATE: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        """The state as plain Python values (lists are copied)."""
        return {name: _plain(getattr(self, name)) for name in self.STATE}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a damaged state raises (see :meth:`read_state`) and changes
        nothing."""
        self.set_state(self.read_state(state))

    def read_state(self, state: Any) -> dict[str, Any]:
        """The fields of ``state``, each checked against the field's fresh value, which the part leaves as it is.

        A field that starts as a bool holds a bool; one that starts as an int holds a whole number (not negative if
        it starts so); one that starts as a float holds a finite one or the NaN or infinity it starts with ("not known
        yet", "no best yet"); one that starts as a list holds finite numbers; one that starts as None holds None, a
        finite number or a list of finite numbers.

        Raises:
            TypeError: ``state`` is not a dict, or a field has the wrong type.
            KeyError: a field is missing.
            ValueError: a field is out of range (inf where a count belongs, NaN where the noise is known).
        """
        name = type(self).__name__
        state = checked_mapping(f"the {name} state", state)
        require_keys(f"`state` of the {name}", state, self.STATE)
        fresh = _FRESH.get(type(self))
        if fresh is None:  # an instance not made by calling its class (unpickled): its own values are the guide
            fresh = self.state_dict()
        return {field: _checked_like(f"`{name}.{field}`", state[field], fresh.get(field)) for field in self.STATE}

    def set_state(self, values: Mapping[str, Any]) -> None:
        """Assign fields read by :meth:`read_state`."""
        for name, value in values.items():
            setattr(self, name, value)


def load_parts(parts: Mapping[str, Stateful], state: Any, owner: str) -> None:
    """Load each part (a :class:`Stateful` whose state is its ``STATE``) from ``state[name]``, after reading every
    one: a damaged state changes none of them."""
    state = checked_mapping(f"the {owner} state", state)
    missing = [name for name in parts if name not in state]
    if missing:
        raise KeyError(f"`state` lacks the {owner} keys {missing}")
    values = {name: part.read_state(state[name]) for name, part in parts.items()}
    for name, part in parts.items():
        part.set_state(values[name])


def _checked_like(field: str, value: Any, fresh: Any) -> Any:
    """``value`` checked against ``fresh``, the field's value in a new part (see :meth:`Stateful.read_state`)."""
    if isinstance(fresh, bool):
        return checked_bool(field, value)
    if isinstance(fresh, int):
        return checked_whole(field, value, low=0 if fresh >= 0 else -MAX_WHOLE)
    if isinstance(fresh, float):
        return checked_real(field, value, allow=() if math.isfinite(fresh) else (fresh,))
    if isinstance(fresh, list):
        return checked_reals(field, value)
    if fresh is None:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return checked_reals(field, value)
        if isinstance(value, int) and not isinstance(value, bool):
            return checked_whole(field, value)
        if isinstance(value, float):
            return checked_real(field, value)
        raise TypeError(f"Expected {field} to be None, a number or a list of numbers, but got {describe(value)}")
    if not isinstance(value, type(fresh)):
        raise TypeError(f"Expected {field} to be a {type(fresh).__name__}, but got {describe(value)}")
    return value


def _plain(value: object) -> object:
    return list(value) if isinstance(value, list) else value
