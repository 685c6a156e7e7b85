"""What curvecast writes to the Trainer's TensorBoard logger outside the reporter, and the check every write passes:
the disk keeps room for the run's own logs and checkpoints, and an alert's text goes under ``curvecast/alerts``."""

from __future__ import annotations

import shutil
import weakref
from typing import Any

from curvecast._lightning import tensorboard_writer
from curvecast.failsafe import warn_once
from curvecast.series import ALERTS_TAG

__all__ = ["MIN_FREE_BYTES", "disk_has_room", "write_alert_text"]

# The last step written under the alerts tag, per SummaryWriter. A TensorBoard tag must never get two events at one
# step (the Rust data server keeps only the latest), so a second alert at the same step goes one step later; its
# text still names the step it is about.
_last_text_step: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


# curvecast writes nothing while the log's disk has less free than this: the run's own logs and checkpoints keep the
# room, and curvecast (a few KB a report) is never the writer that fills a disk. Its events share the Lightning
# logger's buffer, so a write that fits now could still make Lightning's own flush fail later.
MIN_FREE_BYTES = 16 << 20


def disk_has_room(log_dir: str) -> bool:
    """Whether the disk of ``log_dir`` has at least :data:`MIN_FREE_BYTES` free (warned once when not; a statvfs
    call, microseconds); True when it cannot be told."""
    try:
        free = shutil.disk_usage(log_dir).free
    except (OSError, ValueError, TypeError):
        return True
    if free >= MIN_FREE_BYTES:
        return True
    warn_once(
        f"curvecast: the disk of {log_dir} has {free / 2**20:.1f} MiB free; curvecast writes nothing to TensorBoard "
        f"while it has less than {MIN_FREE_BYTES / 2**20:.0f} MiB, leaving the room to the run's own logs and "
        "checkpoints (forecasts and alerts still go to the 'curvecast' logger).",
        key="disk-low",
    )
    return False


def write_alert_text(trainer: Any, markdown: str, step: int) -> None:
    """Write an alert's ``markdown`` under the text tag ``curvecast/alerts`` of the Trainer's TensorBoard logger, if
    it has one and its disk has room. Failures to write become one warning."""
    try:
        writer = tensorboard_writer(trainer)
        if writer is None or not disk_has_room(writer.log_dir):
            return
        step = max(int(step), _last_text_step.get(writer, -1) + 1)
        _last_text_step[writer] = step
        writer.add_text(ALERTS_TAG, markdown, step)
        writer.flush()  # alerts are rare and the default flush interval is two minutes
    except Exception as error:  # noqa: BLE001 - an alert that cannot be written must not stop the run
        warn_once(f"curvecast: could not write an alert to TensorBoard ({type(error).__name__}: {error})", key="alert")
