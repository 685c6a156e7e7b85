"""SummaryRun: the ``curvecast_summary`` sub-run of a TensorBoard run, an hparams session (tab "HParams").

Its metrics (final forecast, interval, chance of reaching the target, best and last observed value, whether the run
was stopped early) are updated at every report, so the row shows the final summary once the run ends. It is its own
event file, beside the run's; :class:`~curvecast.integrations.TensorBoardReporter` decides when it is written.
"""

from __future__ import annotations

import os
from typing import Any

from curvecast.series import logged_name

__all__ = ["SUMMARY_METRICS", "SUMMARY_RUN", "SummaryRun"]

SUMMARY_RUN = "curvecast_summary"
SUMMARY_METRICS = ("final", "final_lo", "final_hi", "prob_target", "step_to_target", "best", "last", "stopped_early")


class SummaryRun:
    """The hparams sub-run of one TensorBoard run directory, opened at the first write."""

    def __init__(self) -> None:
        self._writer: Any = None

    def write(self, log_dir: str, params: dict[str, Any], values: dict[str, float], step: int) -> None:
        """Write ``values`` (names from :data:`SUMMARY_METRICS`) at ``step``; the first call also writes the session's
        ``params`` (scalars only: anything else cannot be an hparam)."""
        # torch's writer loads TensorBoard's summary protos: only a run that writes a summary pays for it.
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        if self._writer is None:
            self._writer = SummaryWriter(log_dir=os.path.join(log_dir, SUMMARY_RUN))
            params = {k: v for k, v in params.items() if isinstance(v, (bool, int, float, str))}
            metrics = {logged_name(f"summary/{name}"): 0.0 for name in SUMMARY_METRICS}
            # Written once, without hparams()'s own scalars: the metric values come from the scalars below.
            for proto in hparams(params, metrics):
                self._writer.file_writer.add_summary(proto)
        for name, value in values.items():
            self._writer.add_scalar(logged_name(f"summary/{name}"), value, step)
        self._writer.flush()

    def close(self) -> None:
        """Close the sub-run's file (safe to call twice); the next write opens it again."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def module_hparams(pl_module: Any) -> dict[str, Any]:
    """The module's saved hyperparameters (``save_hyperparameters``), flattened one level, scalars only."""
    try:
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
    except Exception:  # noqa: BLE001 - an odd hparams container is not worth a failure
        return {}
    flat: dict[str, Any] = {}
    for key, value in hparams.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{k}": v for k, v in value.items()})
        else:
            flat[str(key)] = value
    return flat
