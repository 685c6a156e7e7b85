"""How the bundle's arguments become its parts: each part is configured the one way (True for the defaults, an instance,
or False), the loggers part takes a choice of loggers too, and the monitor, the cadence and the target are checked
before any run starts."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

from curvecast.forecasting.real_values import check_value
from curvecast.integrations.early_stopping import ForecastEarlyStopping
from curvecast.integrations.loggers import LoggerForwarder
from curvecast.integrations.tensorboard import TensorBoardReporter
from curvecast.live.nonfinite_guard import NonFiniteGuard

__all__ = ["checked_every", "checked_monitor", "checked_target", "finite_guard", "forwarder", "part"]

P = TypeVar("P")


def part(choice: bool | P | None, cls: type[P], name: str, **defaults: Any) -> P | None:
    """A part of the bundle, configured the one way every part is: True (the defaults), an instance, or False."""
    if choice is False or choice is None:
        return None
    if choice is True:
        made = cls(**defaults)
        made.asked = False  # built by default: a measure it cannot take is then said at info, not warned
        return made
    if not isinstance(choice, cls):
        raise TypeError(f"Expected `{name}` to be a bool or a {cls.__name__}, but got {type(choice).__name__}")
    return choice


def forwarder(loggers: Any, tensorboard: TensorBoardReporter | None) -> LoggerForwarder | None:
    """The ``loggers`` part: False or None (none), True (``"all"``), a choice of loggers, or a configured forwarder;
    the forecast interval is TensorBoard's, so every logger shows the same band (and the TensorBoard part, told
    that the forecasts go to the other loggers, does not say they go nowhere without a TensorBoardLogger)."""
    if tensorboard is not None:
        tensorboard.forwarded = loggers is not False and loggers is not None
    if loggers is False or loggers is None:
        return None
    if isinstance(loggers, LoggerForwarder):
        return loggers
    interval = tensorboard.interval if tensorboard is not None else 0.8
    return LoggerForwarder("all" if loggers is True else loggers, interval=interval)


def finite_guard(actuators: Iterable[Any], current: NonFiniteGuard | None = None) -> NonFiniteGuard | None:
    """The non-finite guard (``current`` kept, else a new one) when one of ``actuators`` (None among them skipped)
    stops on a non-finite loss, however it was given (``early_stopping=``, ``actuators=`` or beside the bundle in the
    Trainer's callbacks), else None: without it the run stops only when the loss reaches the detectors, up to 8 steps
    later on a CPU, each of those steps writing NaN into the weights. The bundle checks it per hook call as
    ``is not None``: a run without such a stopper pays nothing."""
    if not any(isinstance(a, ForecastEarlyStopping) and a.rule.check_finite for a in actuators):
        return None
    return current if current is not None else NonFiniteGuard()


def checked_target(target: Any) -> float | None:
    """``target`` as a float, or None; anything else (a string, a bool, nan, inf) is a clear error now, not a run
    with no target check later."""
    if target is None:
        return None
    # check_value: an int past the float range (10**400) is inf here, where math.isfinite raised OverflowError.
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(check_value(target)):
        raise ValueError(f"Expected `target` to be a finite number or None, but got {target!r}")
    return float(target)


def checked_monitor(monitor: Any) -> str | None:
    """``monitor``: a metric's name, or None (the training loss)."""
    if monitor is not None and (not isinstance(monitor, str) or not monitor):
        raise TypeError(f"Expected `monitor` to be a metric's name or None, but got {monitor!r}")
    return monitor


def checked_every(forecast_every: Any) -> int:
    """``forecast_every``: a positive number of optimizer steps."""
    if isinstance(forecast_every, bool) or not isinstance(forecast_every, numbers.Integral) or forecast_every < 1:
        raise ValueError(f"Expected `forecast_every` to be a positive int, but got {forecast_every!r}")
    return int(forecast_every)
