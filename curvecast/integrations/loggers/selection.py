"""Which of the Trainer's loggers get curvecast's forecasts and alerts: ``"all"``, or named by class, name or object.

The TensorBoard logger that curvecast writes to itself (the Trainer's first one) is never among them: it holds the
forecasts and alerts already, and a tag given a second point at one step confuses TensorBoard's loaders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from curvecast._lightning import tensorboard_writer
from curvecast.integrations.loggers.sinks import class_names

__all__ = ["LoggerChoice", "check_choice", "choose_loggers", "describe"]

# "all", or a list of: a logger class (``WandbLogger``: its instances and subclasses'), a name (``"wandb"``,
# ``"MLFlowLogger"``: a class or base class of that name, with or without ``Logger``, any case) or a logger object.
LoggerChoice = Literal["all"] | Sequence[Any]

_EXPECTED = '"all" or a list of Lightning loggers, logger classes or names (e.g. ["wandb", "mlflow"])'


def check_choice(loggers: Any) -> Literal["all"] | tuple[Any, ...]:
    """``loggers`` checked: ``"all"``, or a tuple of classes, names and logger objects (a clear error otherwise)."""
    if isinstance(loggers, str):
        if loggers == "all":
            return "all"
        raise ValueError(f"Expected `loggers` to be {_EXPECTED}, but got {loggers!r} (a name goes in a list: "
                         f"loggers=[{loggers!r}])")  # fmt: skip
    if not isinstance(loggers, Sequence):
        hint = " (a logger goes in a list)" if callable(getattr(loggers, "log_metrics", None)) else ""
        raise TypeError(f"Expected `loggers` to be {_EXPECTED}, but got {type(loggers).__name__}{hint}")
    if not loggers:
        raise ValueError(f"Expected `loggers` to be {_EXPECTED}, but got an empty list")
    for entry in loggers:
        if isinstance(entry, str):
            if not entry.strip():
                raise ValueError(f"Expected each name in `loggers` to be a logger's name, but got {entry!r}")
        elif not isinstance(entry, type) and not callable(getattr(entry, "log_metrics", None)):
            raise TypeError(
                f"Expected each entry of `loggers` to be a Lightning logger, a logger class or a name, but got "
                f"{entry!r} ({type(entry).__name__}, which has no `log_metrics`)"
            )
    return tuple(loggers)


def choose_loggers(trainer: Any, choice: Literal["all"] | tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    """The loggers of ``trainer`` that ``choice`` picks, in the Trainer's order, and the entries of ``choice`` that
    pick none of them (curvecast's own TensorBoard logger left out). A logger object named in ``choice`` is taken even
    when the Trainer does not hold it."""
    own = tensorboard_writer(trainer)
    present = [logger for logger in getattr(trainer, "loggers", None) or [] if not _written_by_curvecast(logger, own)]
    if choice == "all":
        return present, []
    chosen: list[Any] = []
    unmatched: list[Any] = []
    for entry in choice:
        if _is_logger_object(entry):
            picked = [] if _written_by_curvecast(entry, own) else [entry]
        else:
            picked = [logger for logger in present if _matches(logger, entry)]
        if not picked:
            unmatched.append(entry)
        chosen += [logger for logger in picked if not any(logger is c for c in chosen)]
    return chosen, unmatched


def describe(entry: Any) -> str:
    """An entry of the choice, as a message names it."""
    if isinstance(entry, str):
        return repr(entry)
    return entry.__name__ if isinstance(entry, type) else f"a {type(entry).__name__}"


def _is_logger_object(entry: Any) -> bool:
    return not isinstance(entry, (str, type))


def _matches(logger: Any, entry: Any) -> bool:
    if isinstance(entry, type):
        return isinstance(logger, entry)
    wanted = entry.strip().lower()
    return any(wanted in (name.lower(), name.lower().removesuffix("logger")) for name in class_names(logger))


def _written_by_curvecast(logger: Any, own: Any) -> bool:
    """Whether ``logger`` is the TensorBoard logger whose writer curvecast writes to (``experiment`` is only read on a
    TensorBoard logger: on another it may start a run)."""
    return own is not None and "TensorBoardLogger" in class_names(logger) and logger.experiment is own
