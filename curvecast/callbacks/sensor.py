"""Sensor: the base of curvecast's measuring callbacks, each recording its series into a RunHistory.

A sensor used on its own records into a history of its own and keeps it in its checkpoint state. Inside the
:class:`~curvecast.Curvecast` bundle every sensor records into the bundle's shared history (:meth:`record_into`), which
the bundle checkpoints once, so a sensor's state then holds only what is its own.

To add a sensor: subclass :class:`Sensor`; implement the Lightning hooks it measures in, each wrapped in
:func:`~curvecast.failsafe.guarded` (a failure is a warning and never ends the run); record with
``self.history.append(name, step, value)``, under a name added to :mod:`curvecast.series` and at the step
:func:`~curvecast._lightning.optimizer_step_index` gives; keep what must survive a resume in ``state_dict`` /
``load_state_dict`` (plain Python types) and name it with :attr:`Sensor.state_name`. In the bundle, give
:class:`~curvecast.live.bundle.Curvecast` a ``bool | instance`` argument for it and add it to the tuple its
``sensors`` are built from: the bundle forwards every hook to each sensor and checkpoints each ``state_name``.
"""

from __future__ import annotations

from typing import Any

from curvecast._lightning import Callback
from curvecast.history import RunHistory

__all__ = ["Sensor"]


class Sensor(Callback):
    """A Lightning callback that measures a live run into ``history``.

    Args:
        history: where to record; None gives the sensor a history of its own.

    Attributes:
        state_name: the key of the sensor's state in the bundle's checkpoint state; None when all it keeps is in the
            history.
    """

    state_name: str | None = None

    def __init__(self, history: RunHistory | None = None) -> None:
        self.history = history if history is not None else RunHistory()
        self._owns_history = history is None

    @property
    def owns_history(self) -> bool:
        """Whether the history is the sensor's own (saved in its state) rather than shared (saved by its owner)."""
        return self._owns_history

    def record_into(self, history: RunHistory) -> None:
        """Record into ``history``, shared with other parts and checkpointed by whoever shares it."""
        self.history = history
        self._owns_history = False

    def idle_hooks(self) -> frozenset[str]:
        """The per-step hooks this sensor does nothing in during the fit under way (read after its
        ``on_train_start``): a bundle leaves them uncalled, a microsecond or two a hook and step. None by default."""
        return frozenset()

    def flush_pending(self) -> None:
        """Record what was measured but is still held back for the next batch of records (no collective: safe on one
        rank alone, e.g. while Lightning reads callback state to checkpoint). Nothing by default."""

    def _save_history(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with the history added when it is the sensor's own."""
        if self._owns_history:
            state["history"] = self.history.state_dict()
        return state

    def _load_history(self, state: dict[str, Any]) -> None:
        if self._owns_history and "history" in state:
            self.history.load_state_dict(state["history"])
