"""The gradient noise scale's checkpoint state: plain Python types (checkpoints load with ``weights_only=True``),
read back whole or not at all."""

from __future__ import annotations

import math
from typing import Any

from curvecast.callbacks.measures.gns_estimator import GNSEstimator
from curvecast.state_checks import checked_mapping, checked_real, require_keys

__all__ = ["STATE_VERSION", "gns_state", "read_gns_state"]

STATE_VERSION = 1


def gns_state(estimator: GNSEstimator, last_grad_norm: float | None) -> dict[str, Any]:
    """The state of the estimator and the last gradient norm."""
    return {"version": STATE_VERSION, "estimator": estimator.state_dict(), "last_grad_norm": last_grad_norm}


def read_gns_state(state_dict: Any, estimator: GNSEstimator) -> tuple[dict[str, Any], Any, float | None]:
    """The checked state, the estimator's part as ``estimator.set_state`` takes it, and the last gradient norm; a
    damaged state raises ``KeyError``, ``TypeError`` or ``ValueError`` naming the field, and changes nothing."""
    state = checked_mapping("the GradientNoiseScale state", state_dict)
    version = state.get("version")
    if isinstance(version, bool) or version != STATE_VERSION:
        raise ValueError(f"Expected a GradientNoiseScale state of version {STATE_VERSION}, but got {version!r}")
    require_keys("the GradientNoiseScale state", state, ("estimator",))
    host = estimator.read_state(state["estimator"])
    last_grad_norm = state.get("last_grad_norm")
    if last_grad_norm is not None:  # NaN and inf included: a non-finite gradient norm is what it measured
        last_grad_norm = checked_real("`GradientNoiseScale.last_grad_norm`", last_grad_norm,
                                      allow=(math.nan, math.inf, -math.inf))  # fmt: skip
    return state, host, last_grad_norm
