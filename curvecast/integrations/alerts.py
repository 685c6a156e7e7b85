"""Alerts: what happened, at which step, what to try; sent to Python logging and to the TensorBoard text tag.

Whatever has something to say (an anomaly, a piece of advice, the bundle announcing a stop) builds an :class:`Alert`
and hands it to :func:`publish_alert`, which logs it on the ``"curvecast"`` logger and, when the Trainer has a
TensorBoard logger, writes it as markdown under the text tag ``curvecast/alerts``. :class:`AlertLogger` is the actuator
that turns the anomalies of each report into alerts.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from curvecast.forecasting.report import Report
from curvecast.integrations.actuator import Actuator
from curvecast.integrations.tensorboard_disk import write_alert_text
from curvecast.series import ALERTS_TAG

__all__ = ["ALERTS_TAG", "SEVERITIES", "Alert", "AlertLogger", "publish_alert"]

log = logging.getLogger("curvecast")

SEVERITIES = ("info", "warning", "critical")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


@dataclass(frozen=True)
class Alert:
    """One message for the user.

    Attributes:
        kind: what it is about, e.g. ``"spike"``, ``"early_stop"``, ``"advice/batch_size"``.
        step: the optimizer step it is about.
        severity: ``"info"``, ``"warning"`` or ``"critical"``.
        message: what happened, at which step, and what to try.
        source: which actuator raised it (``"anomaly"``, ``"advice"``, ``"early_stopping"``).

    Example::

        >>> Alert("spike", 120, "warning", "loss spiked at step 120.").markdown()
        '**warning** · `spike` · step 120\\n\\nloss spiked at step 120.'
        >>> Alert("spike", 7, "warning", "val/![x](http://e.com/x.png) spiked.").markdown().split("\\n")[-1]
        'val/\\\\!\\\\[x\\\\](http://e.com/x.png) spiked.'
    """

    kind: str
    step: int
    severity: str
    message: str
    source: str = "anomaly"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Expected `severity` to be one of {SEVERITIES}, but got {self.severity!r}")

    def markdown(self) -> str:
        """The alert as TensorBoard's text plugin renders it (markdown); what comes from the run (metric names in the
        kind and the message) is escaped, so a name such as ``<img src=x>`` or ``![x](http://...)`` shows as text
        and is never rendered as HTML, an image or a link."""
        # The kind goes in a code span, where markdown is not read: it only must not close the span or end the line.
        kind = html.escape(" ".join(self.kind.split()), quote=False).replace("`", "'")
        return f"**{self.severity}** · `{kind}` · step {self.step}\n\n{_escape(self.message)}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def publish_alert(trainer: Any, alert: Alert, tensorboard: bool = True) -> None:
    """Log ``alert`` on the ``"curvecast"`` logger and, if the Trainer has a TensorBoard logger, write it as text.

    Call it on rank 0 only (reports are dispatched there). Failures to write become one warning.
    """
    # An info-level anomaly (a one-batch spike that recovered, say) is an observation with nothing to act on: it goes
    # to TensorBoard's alert list, but a console line about it reads as a problem on a healthy run.
    level = logging.DEBUG if alert.source == "anomaly" and alert.severity == "info" else _LEVELS[alert.severity]
    log.log(level, "curvecast [%s] step %d: %s", alert.kind, alert.step, alert.message)
    if tensorboard and trainer is not None:
        write_alert_text(trainer, alert.markdown(), alert.step)


# Markdown's inline syntax (code, emphasis, links and images, tables), escaped wherever it stands, and what only
# opens a block at the start of a line (a heading, a list item, a rule, an ordered list's "1." or "1)").
_INLINE = re.compile(r"([\\`*_{}\[\]!|])")
_LINE_START = re.compile(r"^([ \t]*)([#+-]|\d+[.)])", re.MULTILINE)


def _escape(text: str) -> str:
    """``text`` as markdown that renders as that text: a metric name is the run's text, and TensorBoard's markdown
    would render ``![x](url)`` as an image and pass inline HTML through.

    Markdown's punctuation is backslash-escaped where it has a meaning (CommonMark and Python-Markdown, which
    TensorBoard uses, read the same escapes); ``&``, ``<`` and ``>`` become HTML entities, the form both read as text
    (Python-Markdown keeps the backslash of ``\\<``).
    """
    text = _INLINE.sub(r"\\\1", text)
    text = _LINE_START.sub(lambda m: m[1] + m[2][:-1] + "\\" + m[2][-1], text)
    return html.escape(text, quote=False)


class AlertLogger(Actuator):
    """Actuator: each anomaly of each report becomes an :class:`Alert` (logging + TensorBoard), once.

    Args:
        min_severity: anomalies below this severity are not published.
        tensorboard: also write alerts to the TensorBoard text tag ``curvecast/alerts``.

    Attributes:
        alerts: every alert published so far (bounded by ``max_kept``).
    """

    def __init__(self, min_severity: str = "info", tensorboard: bool = True, max_kept: int = 1000) -> None:
        if min_severity not in SEVERITIES:
            raise ValueError(f"Expected `min_severity` to be one of {SEVERITIES}, but got {min_severity!r}")
        if max_kept < 1:
            raise ValueError(f"Expected `max_kept` to be a positive int, but got {max_kept}")
        self.min_severity = min_severity
        self.tensorboard = tensorboard
        self.max_kept = max_kept
        self.alerts: list[Alert] = []
        self._seen: dict[tuple[str, str, int, str], None] = {}  # insertion-ordered: the oldest go first

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        floor = SEVERITIES.index(self.min_severity)
        for anomaly in report.anomalies:
            if SEVERITIES.index(anomaly.severity) < floor:
                continue
            # The detector reports an escalation again with a new severity: that is news, a repeat is not.
            key = (anomaly.kind, getattr(anomaly, "series", ""), int(anomaly.step), anomaly.severity)
            if key in self._seen:
                continue
            self._seen[key] = None
            if len(self._seen) > 10 * self.max_kept:  # bounded memory on a very long, very noisy run
                del self._seen[next(iter(self._seen))]
            alert = Alert(anomaly.kind, int(anomaly.step), anomaly.severity, anomaly.message, source="anomaly")
            self.alerts = [*self.alerts[-(self.max_kept - 1) :], alert]
            publish_alert(trainer, alert, tensorboard=self.tensorboard)
