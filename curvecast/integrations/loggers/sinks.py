"""Sinks: one Lightning logger, and the form in which it shows curvecast's forecasts and alerts best.

- any logger (:class:`MetricsSink`): the forecast scalars through Lightning's ``log_metrics``; alerts have no common
  API across loggers and are not sent;
- ``WandbLogger`` (:class:`WandbSink`): the scalars, every alert kept as a row of the table ``curvecast/alerts``, and
  each warning or critical alert as a W&B alert (``run.alert``: e-mail or Slack, as the user set it up in W&B; an
  offline run keeps it in its ``.wandb`` file and ``wandb sync`` sends it);
- ``MLFlowLogger`` (:class:`MlflowSink`): the scalars, every alert kept in the text artifact
  ``curvecast/alerts.txt``, and the run tags ``curvecast/alerts`` (how many), ``curvecast/last_alert`` and, once a
  stop is decided, ``curvecast/early_stop`` (runs can be searched and sorted on tags).

A logger is recognised by the name of its class or of a base class, so both Lightning flavours (and a subclass) are
served, and neither ``wandb`` nor ``mlflow`` is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from curvecast.integrations.alerts import Alert
from curvecast.series import ALERTS_TAG, METRIC_PREFIX

__all__ = [
    "ALERTS_ARTIFACT",
    "ALERT_COLUMNS",
    "MetricsSink",
    "MlflowSink",
    "WandbSink",
    "alert_line",
    "class_names",
    "sink_for",
]

ALERT_COLUMNS = ("step", "severity", "kind", "message", "source")  # the W&B table's columns
ALERTS_ARTIFACT = ALERTS_TAG + ".txt"  # curvecast/alerts.txt in the MLflow run's artifacts
ALERT_COUNT_TAG = ALERTS_TAG  # MLflow tags
LAST_ALERT_TAG = METRIC_PREFIX + "last_alert"
STOP_TAG = METRIC_PREFIX + "early_stop"
# MLflow refuses a tag value over 8000 characters (5000 before MLflow 2): an alert line is cut well short of either.
_TAG_CHARS = 4000
_WANDB_LEVELS = {"warning": "WARN", "critical": "ERROR"}  # info alerts notify no one: they are in the table
_WANDB_TITLE_CHARS = 63  # W&B wants an alert's title under 64 characters


def alert_line(alert: Alert) -> str:
    """One alert as one line of plain text: ``step 150 · warning · spike: loss spiked ...``."""
    message = " ".join(alert.message.split())
    return f"step {alert.step} · {alert.severity} · {alert.kind}: {message}"


def class_names(logger: Any) -> list[str]:
    """The names of the logger's class and of its bases, most specific first."""
    return [cls.__name__ for cls in type(logger).__mro__ if cls is not object]


class MetricsSink:
    """Any Lightning logger: the forecast scalars through ``log_metrics``; alerts are not sent."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.name = type(logger).__name__

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.logger.log_metrics(dict(metrics), step)

    def log_alerts(self, new: Sequence[Alert], kept: Sequence[Alert], total: int, step: int) -> None:
        """Show the ``new`` alerts; ``kept`` are the most recent ones (``new`` included), ``total`` how many so far."""


class WandbSink(MetricsSink):
    """A ``WandbLogger``: the alerts as the table ``curvecast/alerts`` and, from warnings up, as W&B alerts."""

    def log_alerts(self, new: Sequence[Alert], kept: Sequence[Alert], total: int, step: int) -> None:
        # The whole table each time (at most the kept alerts): W&B shows the latest one logged under a key.
        rows = [[a.step, a.severity, a.kind, a.message, a.source] for a in kept]
        self.logger.log_table(key=ALERTS_TAG, columns=list(ALERT_COLUMNS), data=rows, step=step)
        run = self.logger.experiment
        for alert in new:
            level = _WANDB_LEVELS.get(alert.severity)
            if level is not None:
                # The title names the kind only: W&B holds back an alert whose title was sent in the last minute,
                # so a run spiking again and again notifies once a minute, not once a spike.
                title = f"curvecast: {alert.kind}"[:_WANDB_TITLE_CHARS]
                run.alert(title=title, text=alert_line(alert), level=level)


class MlflowSink(MetricsSink):
    """An ``MLFlowLogger``: the alerts as the text artifact ``curvecast/alerts.txt`` and as run tags."""

    def log_alerts(self, new: Sequence[Alert], kept: Sequence[Alert], total: int, step: int) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        # Rewritten whole: an artifact cannot be appended to. Alerts are rare, and the kept ones are bounded.
        client.log_text(run_id, "".join(alert_line(a) + "\n" for a in kept), ALERTS_ARTIFACT)
        client.set_tag(run_id, ALERT_COUNT_TAG, str(total))
        client.set_tag(run_id, LAST_ALERT_TAG, alert_line(new[-1])[:_TAG_CHARS])
        stops = [a for a in new if a.kind == "early_stop"]
        if stops:
            client.set_tag(run_id, STOP_TAG, stops[-1].message[:_TAG_CHARS])


def sink_for(logger: Any) -> MetricsSink:
    """The sink that shows ``logger`` curvecast's forecasts and alerts best."""
    names = class_names(logger)
    if "WandbLogger" in names:
        return WandbSink(logger)
    if "MLFlowLogger" in names:
        return MlflowSink(logger)
    return MetricsSink(logger)
