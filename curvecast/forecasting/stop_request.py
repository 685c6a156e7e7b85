"""StopRequest: a decision that the run should stop, with its reason; it travels to every actuator on the Report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["StopReason", "StopRequest"]


class StopReason(str, Enum):
    """Why a run was stopped."""

    TARGET_OUT_OF_REACH = "target_out_of_reach"
    """The forecast gives the target too small a chance, on consecutive checks."""
    NO_IMPROVEMENT_EXPECTED = "no_improvement_expected"
    """Without a target: the forecast expects less than ``min_delta`` of further improvement, on consecutive checks."""
    DIVERGENCE = "divergence"
    """The anomaly detector confirmed a divergence of the monitored series."""
    NON_FINITE = "non_finite"
    """The monitored series became NaN or infinite."""
    REQUESTED = "requested"
    """An actuator of the user's asked for the stop for a reason of its own (its ``message`` says which)."""


@dataclass(frozen=True)
class StopRequest:
    """A decision to stop: the reason, the step it was made at, and a message saying why and what to try.

    Example::

        >>> StopRequest(StopReason.DIVERGENCE, 250, "Stopped at step 250: the loss diverged.").reason.value
        'divergence'
    """

    reason: StopReason
    step: int
    message: str
