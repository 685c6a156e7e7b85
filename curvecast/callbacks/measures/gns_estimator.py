"""The two-batch gradient noise scale estimator (McCandlish et al. 2018, App. A.2) with device-side EMAs.

From the squared norm of a gradient averaged over ``b_small`` examples and of one averaged over ``b_big`` examples,

    |G|^2_est = (b_big * |G_big|^2 - b_small * |G_small|^2) / (b_big - b_small)      (E = |G|^2)
    S_est     = (|G_small|^2 - |G_big|^2) / (1 / b_small - 1 / b_big)                 (E = tr(Sigma))

are unbiased. Each is noisy (|G|^2_est is often negative), and a ratio of noisy terms is biased, so the two are smoothed
by separate EMAs and B_simple = EMA(S) / EMA(|G|^2). The EMAs live on the device: an update is a handful of scalar
kernels and never waits for the device; the host reads them only when asked (:meth:`GNSEstimator.read`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from curvecast.series import GNS_B_SIMPLE, GNS_GRAD_SQ_NORM, GNS_TRACE_COV
from curvecast.state_checks import checked_mapping, checked_real, checked_reals, checked_whole, require_keys

__all__ = ["GNSEstimate", "GNSEstimator", "two_batch_estimates"]

_STATE_VERSION = 1


def two_batch_estimates(
    small_sq: torch.Tensor | float, big_sq: torch.Tensor | float, b_small: float, b_big: float
) -> tuple[Any, Any]:
    """Unbiased estimates ``(|G|^2, tr(Sigma))`` from squared gradient norms at two batch sizes.

    Example::

        >>> g2, s = two_batch_estimates(3.0, 1.5, 1, 4)  # |G|^2 + S/1 = 3, |G|^2 + S/4 = 1.5
        >>> round(g2, 6), round(s, 6)
        (1.0, 2.0)
    """
    if not b_big > b_small > 0:
        raise ValueError(f"Expected `b_big` > `b_small` > 0, but got b_small={b_small}, b_big={b_big}")
    g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    s = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, s


@dataclass(frozen=True)
class GNSEstimate:
    """A host-side reading of the estimator.

    Attributes:
        grad_sq_norm: EMA of |G|^2_est (bias-corrected), or None before the first update.
        trace_cov: EMA of S_est = tr(Sigma) (bias-corrected), or None before the first update.
        b_simple: ``trace_cov / grad_sq_norm``; None during warm-up or while ``grad_sq_norm <= 0`` (the noise swamps
            the signal at the big batch size: the noise scale is at least of the order of ``b_big``).
        updates: steps that entered the EMAs.
    """

    grad_sq_norm: float | None
    trace_cov: float | None
    b_simple: float | None
    updates: int

    def series(self) -> dict[str, float | None]:
        """The values by the name of the series they are recorded as."""
        return {GNS_GRAD_SQ_NORM: self.grad_sq_norm, GNS_TRACE_COV: self.trace_cov, GNS_B_SIMPLE: self.b_simple}


class GNSEstimator:
    """Separate bias-corrected EMAs of |G|^2_est and S_est, kept as device tensors.

    Args:
        beta: EMA decay per update (0.99 averages over roughly the last 100 updates).
        min_updates: updates before ``b_simple`` is reported.

    Non-finite inputs (an AMP step the scaler skips) leave the state unchanged, decided on the device.
    """

    def __init__(self, beta: float = 0.99, min_updates: int = 10) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Expected `beta` to be in [0, 1), but got {beta}")
        if min_updates < 1:
            raise ValueError(f"Expected `min_updates` to be a positive int, but got {min_updates}")
        self.beta = beta
        self.min_updates = min_updates
        # [EMA(|G|^2), EMA(S), sum of EMA weights, updates]; float64 so long runs lose nothing to rounding
        self._state: torch.Tensor | None = None
        self._host = [0.0, 0.0, 0.0, 0.0]

    def state_on(self, device: torch.device) -> torch.Tensor:
        if self._state is None or self._state.device != device:
            self._state = torch.tensor(self._host, dtype=torch.float64, device=device)
        return self._state

    def update(
        self, small_sq: torch.Tensor | float, big_sq: torch.Tensor | float, b_small: float, b_big: float
    ) -> None:
        """Fold in one step's squared norms (0-d tensors, or floats); no host synchronisation on an accelerator."""
        if not isinstance(big_sq, torch.Tensor) or big_sq.device.type == "cpu":
            self._update_on_host(float(small_sq), float(big_sq), b_small, b_big)
            return
        state = self.state_on(big_sq.device)
        small = small_sq.detach().to(torch.float64)
        big = big_sq.detach().to(torch.float64)
        g2, s = two_batch_estimates(small, big, b_small, b_big)
        ok = torch.isfinite(g2) & torch.isfinite(s)
        beta = self.beta
        one = torch.ones((), dtype=torch.float64, device=state.device)
        new = torch.stack([beta * state[0] + (1 - beta) * g2, beta * state[1] + (1 - beta) * s,
                           beta * state[2] + (1 - beta) * one, state[3] + one])
        # torch.where keeps a skipped step out without asking the host whether it was finite
        state.copy_(torch.where(ok, new, state))

    def _update_on_host(self, small_sq: float, big_sq: float, b_small: float, b_big: float) -> None:
        """The same update in Python floats: on a CPU there is no device to keep in step with, and four float
        operations cost a twentieth of the twenty scalar tensor ops (0.1 ms)."""
        if self._state is not None:
            self._host = [float(x) for x in self._state.tolist()]
            self._state = None  # the host list is the state now; `state_on` builds the tensor again from it
        g2, s = two_batch_estimates(small_sq, big_sq, b_small, b_big)
        if not (math.isfinite(g2) and math.isfinite(s)):
            return  # a skipped step stays out, as on the device
        ema_g2, ema_s, weight, updates = self._host
        beta = self.beta
        self._host = [beta * ema_g2 + (1 - beta) * g2, beta * ema_s + (1 - beta) * s,
                      beta * weight + (1 - beta), updates + 1.0]  # fmt: skip

    def state_tensor(self) -> torch.Tensor | None:
        """The raw device state ``[ema_g2, ema_s, weight, updates]`` (for a cross-rank mean), or None."""
        return self._state

    def set_state_tensor(self, state: torch.Tensor) -> None:
        self._state = state.detach().to(torch.float64).clone()

    def average_over_ranks(self, strategy: Any) -> None:
        """Under DDP, the EMAs' mean over ranks (a collective every rank joins, updated or not)."""
        state = self.state_on(strategy.root_device)
        self.set_state_tensor(strategy.reduce(state.clone(), reduce_op="mean"))

    def read(self) -> GNSEstimate:
        """Move the state to the host (one transfer: call it at the logging cadence only)."""
        if self._state is not None:
            self._host = [float(x) for x in self._state.tolist()]
        ema_g2, ema_s, weight, updates = self._host
        if weight <= 0.0:
            return GNSEstimate(None, None, None, int(updates))
        g2, s = ema_g2 / weight, ema_s / weight
        b_simple = s / g2 if updates >= self.min_updates and g2 > 0.0 else None
        return GNSEstimate(g2, s, b_simple, int(updates))

    def state_dict(self) -> dict[str, Any]:
        """Plain Python floats (checkpoints load with ``weights_only=True``)."""
        if self._state is not None:
            self._host = [float(x) for x in self._state.tolist()]
        return {"version": _STATE_VERSION, "beta": self.beta, "state": list(self._host)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`; a damaged one raises ``KeyError``, ``TypeError`` or
        ``ValueError`` naming the field, and changes nothing."""
        self.set_state(self.read_state(state))

    @staticmethod
    def read_state(state: Any) -> list[float]:
        """The host state ``[ema_g2, ema_s, weight, updates]`` a saved state holds, every number checked: finite
        EMAs, a weight in [0, 1] (the EMA weights sum to ``1 - beta**updates``), a whole count of updates."""
        state = checked_mapping("the GNSEstimator state", state)
        version = state.get("version")
        if isinstance(version, bool) or version != _STATE_VERSION:
            raise ValueError(f"Expected a GNSEstimator state of version {_STATE_VERSION}, but got {version!r}")
        require_keys("the GNSEstimator state", state, ("state",))
        values = checked_reals("`GNSEstimator.state`", state["state"], max_len=4)
        if len(values) != 4:
            raise ValueError(f"Expected `state` to hold 4 numbers, but got {len(values)}")
        ema_g2, ema_s, weight, updates = values
        weight = checked_real("`GNSEstimator.state[2]` (the EMA weight)", weight, low=0.0, high=1.0 + 1e-9)  # rounding
        updates = checked_whole("`GNSEstimator.state[3]` (the updates)", updates, low=0)
        return [ema_g2, ema_s, weight, float(updates)]

    def set_state(self, host: list[float]) -> None:
        """Take a host state read by :meth:`read_state` (the device copy is made when next needed)."""
        self._host = list(host)
        self._state = None
