"""What a run without a TensorBoardLogger is told about where its forecasts go, once."""

from __future__ import annotations

from typing import Any

from curvecast.failsafe import tell_once, warn_once

__all__ = ["say_where_forecasts_go"]


def say_where_forecasts_go(trainer: Any, forwarded: bool) -> None:
    """The Trainer has no TensorBoardLogger: where the forecasts go instead, said once.

    Sent to the Trainer's other loggers (``Curvecast(loggers=...)``): nothing to say. Other loggers that get none (a
    W&B or CSV run): a warning naming them and both ways to see the forecasts. No logger at all (``logger=False``):
    the user turned logging off, and the console still shows every forecast and alert: an info line.
    """
    if forwarded:
        return
    names = [type(logger).__name__ for logger in getattr(trainer, "loggers", None) or []]
    if not names:
        tell_once("curvecast: the Trainer has no logger: the forecasts and alerts go to the 'curvecast' logger only")
        return
    warn_once(
        f"curvecast: the Trainer's loggers ({', '.join(names)}) get no forecasts: `Curvecast(loggers=\"all\")` sends "
        "them there, and a `TensorBoardLogger` shows them in curvecast's TensorBoard tab (alerts still go to the "
        "'curvecast' logger).",
        key="no-tensorboard",
    )
