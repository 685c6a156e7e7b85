"""Failsafe: curvecast's own failures become warnings, given once, and never end the run it watches.

Two channels, as in Lightning: a problem inside curvecast is a Python warning (:class:`CurvecastWarning`, given once
per cause, so ``warnings.filterwarnings`` and ``pytest.warns`` see it), and what curvecast has to say about the run
(alerts, advice, stops) goes to the ``"curvecast"`` logger. Each is printed once: never both. When the program has
configured no logging at all, the ``"curvecast"`` logger gets a console handler at INFO, as Lightning's own logger
does, so the alerts of a plain script reach its console.

Pure Python (no torch, no Lightning), so the forecast worker and the offline tools use it too.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
import threading
import warnings
from typing import Any

__all__ = ["BarSafeHandler", "CurvecastWarning", "forget_warnings", "guarded", "tell_once", "warn_once"]

log = logging.getLogger("curvecast")
_warned: set[str] = set()


class BarSafeHandler(logging.StreamHandler):
    """A console handler that writes through tqdm when it is installed (Lightning's progress bar is a tqdm bar): the
    bar is cleared, the line printed, the bar drawn again below it, instead of a line starting in the bar's last
    column and a frozen bar left behind."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm
        except ImportError:  # no bar can be drawn without tqdm: a plain line is right
            super().emit(record)
            return
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own contract: a failing handler reports, never raises
            self.handleError(record)


def _console_for_plain_scripts() -> None:
    """Lightning's convention (``lightning.pytorch.__init__``): INFO to the console unless logging is configured."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not logging.getLogger().hasHandlers() and not log.handlers:
        log.addHandler(BarSafeHandler())
        log.propagate = False


_console_for_plain_scripts()


class CurvecastWarning(UserWarning):
    """A problem inside curvecast that it survived; the training run goes on."""


def warn_once(message: str, key: str | None = None) -> None:
    """Warn once per process for ``key``, so a recurring problem does not flood the output."""
    key = key or message
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, CurvecastWarning, stacklevel=_user_stacklevel())


def tell_once(message: str) -> None:
    """Say ``message`` once per process on the ``curvecast`` logger, at info: a limit of a measure nobody asked for."""
    key = f"info: {message}"
    if key not in _warned:
        _warned.add(key)
        log.info(message)


# The frames a warning is never attributed to: curvecast's own, the training framework's, and a worker thread's or
# process's start (a `ddp_spawn` worker runs the fit under multiprocessing's bootstrap, with no line of the user's).
_FRAMEWORKS = ("curvecast", "pytorch_lightning", "lightning", "lightning_fabric", "torch")


@functools.cache
def _internal_prefixes() -> tuple[str, ...]:
    """The source folders of ``_FRAMEWORKS`` (found without importing them), threading's file and multiprocessing's
    folder."""
    prefixes = [threading.__file__]
    for name in (*_FRAMEWORKS, "multiprocessing"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            prefixes.append(os.path.join(os.path.realpath(folder), ""))
    return tuple(prefixes)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of ``warn_once``'s ``warnings.warn`` that points at the first frame of the user's code
    (their ``trainer.fit(...)`` line, say); past the whole stack (a warning from the forecast worker, all of whose
    frames are internal) the warning points at no line."""
    prefixes = _internal_prefixes()
    frame, level = sys._getframe(1), 1  # level 1: warn_once itself
    while frame is not None and os.path.realpath(frame.f_code.co_filename).startswith(prefixes):
        frame, level = frame.f_back, level + 1
    return level


def forget_warnings() -> None:
    """Forget which warnings were given, so each is given once more (a second run in the same process, a test)."""
    _warned.clear()


def guarded(method):
    """Turn an exception inside a hook into a single warning: curvecast must never kill the run it watches.

    The method itself stays reachable as the wrapper's ``__guarded__``, for a caller that guards the call in its own
    ``try`` (the bundle's per-step forwarding: one Python frame less per hook, see :func:`hook_failed`).
    """

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any failure of ours must not reach the training loop
            hook_failed(self, method, error)
            return None

    wrapper.__guarded__ = method
    return wrapper


def hook_failed(owner: Any, method: Any, error: Exception) -> None:
    """What :func:`guarded` does with an exception of ``owner``'s ``method``: one warning for each method."""
    name = f"{type(owner).__name__}.{method.__name__}"
    warn_once(f"curvecast: {name} failed and was skipped ({type(error).__name__}: {error})", key=name)
