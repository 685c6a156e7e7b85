"""FitProcess: pure-numpy calls (the live run's forecast fits) served by a child Python process, off the training
process's GIL.

A fit is numpy on arrays of a few hundred floats: it holds the GIL nearly all the time, and a training thread that
wants it back after each torch op waits out the interpreter's switch interval (5 ms). On a 2-core CPU a fit looping
in a thread slowed 3.3 ms steps to 8.8 ms; the same loop in a child process, to 3.9 ms. So the fits run in one child
per training process, shared by the runs in it: it imports numpy, scipy and ``curvecast.forecasting`` only (about
0.4 s of its own CPU, once), runs with one BLAS thread at a lower priority (the training keeps its cores), and serves
one call at a time over its stdin and stdout (length-prefixed pickles).

The child is started when training starts (or by the first call), killed when a call is abandoned and at exit, and
started again after it dies; after ``MAX_DEATHS`` unexpected deaths in a row the calls raise :class:`ChildGone` for
good, and the caller runs them in its own thread instead (a forecast is never lost to the transport).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import IO, Any

__all__ = ["MAX_DEATHS", "ChildGone", "FitProcess", "serve", "shared_fit_process"]

MAX_DEATHS = 3  # unexpected deaths of the child before calls stop trying one
_HEADER = struct.Struct("<Q")  # the byte length of the pickle that follows
_CHILD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # small arrays: no pools
CHILD_NICE = 10  # the child's priority below the training's (it yields the cores)


class ChildGone(RuntimeError):
    """The child could not serve the call: it died, could not start, or the call was abandoned (``abandoned``)."""

    def __init__(self, message: str, abandoned: bool = False) -> None:
        super().__init__(message)
        self.abandoned = abandoned


class _Same:
    """Stands in for a keyword argument that is the very object the previous call passed under that name: a long
    planned-LR schedule crosses the pipe once, not at every forecast."""


class FitProcess:
    """Calls ``fn(*args, **kwargs)`` in the child and returns ``(result, child CPU seconds)``; thread-safe (calls take
    turns). ``fn`` and the arguments must pickle, ``fn`` by reference (a module-level function or a bound method)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sent: dict[str, Any] = {}  # the keyword arguments the child holds from the last call
        self._caller: object | None = None  # whose call is in flight (see `abandon`)
        self._killed: subprocess.Popen[bytes] | None = None  # the child killed on purpose, for an abandoned call
        self._closing = False  # the interpreter is exiting: no call goes to a child any more
        self.deaths = 0  # deaths in calls since the last call served

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before the first call or after it has gone)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def prestart(self) -> None:
        """Start the child now, if none runs, rather than with the first call: its imports (about 0.4 s of its CPU,
        longer at its low priority on a busy machine) then do not delay the run's first forecast."""
        with self._lock, contextlib.suppress(ChildGone):  # the first call says so, and runs in the thread
            self._running()

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        return self.call_for(None, fn, args, kwargs)

    def call_for(
        self, caller: object | None, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
    ) -> tuple[Any, float]:
        """:meth:`call` on behalf of ``caller``, whose call alone ``abandon(caller)`` may kill."""
        with self._lock:
            proc = self._running()
            held = self._sent
            request = (fn, args, {k: _Same() if k in held and held[k] is v else v for k, v in kwargs.items()})
            self._caller = caller
            try:
                _send(proc.stdin, request)
                self._sent = dict(kwargs)  # what the child holds now, whatever the reply
                ok, value, cpu, caught = _receive(proc.stdout)
            except (OSError, EOFError, struct.error) as error:
                abandoned = self._killed is proc or self._closing
                self._drop(proc)  # dead or dying either way: a pipe that failed once is not trusted again
                if abandoned:
                    raise ChildGone("the call was abandoned", abandoned=True) from None
                self.deaths += 1
                raise ChildGone(f"the forecast process died ({type(error).__name__}: {error})") from None
            finally:
                self._caller = None
            self.deaths = 0
            if not ok:
                self._sent = {}  # the child may hold nothing from a failed call (a request it could not read)
        for message, category in caught:  # pointing at no line: the child's lines are not the user's
            warnings.warn_explicit(message, category, "<curvecast forecast process>", 0)
        if not ok:
            raise value
        return value, cpu

    def abandon(self, caller: object | None = None) -> None:
        """Kill the child if ``caller``'s call is in flight (without waiting for the call's turn): that call raises
        ``ChildGone`` (abandoned), and the next call starts a fresh child. Another caller's call is left alone."""
        proc = self._proc
        if proc is not None and self._caller is caller and self._lock.locked() and proc.poll() is None:
            self._killed = proc
            proc.kill()

    def close(self) -> None:
        """Kill the child (a call in flight raises ``ChildGone``, abandoned); the next call starts another."""
        proc = self._proc
        if proc is not None:
            self._killed = proc
            proc.kill()
            proc.wait()

    def shutdown(self) -> None:
        """At exit: :meth:`close`, and no later call starts a child (a daemon thread's call in flight ends quietly)."""
        self._closing = True
        self.close()

    def _drop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait()  # dead or dying: returns at once, and leaves no zombie
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        self._proc, self._sent = None, {}

    def _running(self) -> subprocess.Popen[bytes]:
        """The child, started if none runs (under the lock)."""
        if self._closing:
            raise ChildGone("the forecast process is closed", abandoned=True)
        if self._proc is not None and self._proc.poll() is None and self._killed is not self._proc:
            return self._proc
        if self._proc is not None:
            self._drop(self._proc)
        if self.deaths >= MAX_DEATHS:
            raise ChildGone(
                f"the forecast process died {self.deaths} times in a row; forecasts run in a thread from now on"
            )
        self._sent = {}
        if getattr(sys, "frozen", False) or not sys.executable:  # a frozen app's executable would run the app again
            self.deaths = MAX_DEATHS
            raise ChildGone("no Python interpreter to start the forecast process with")
        env = {**os.environ, **_CHILD_ENV}
        # The parent's import path, so the child finds curvecast (and ``fn``) wherever the parent found them.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "curvecast.fit_server"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
            )  # fmt: skip
        except (OSError, ValueError) as error:
            self.deaths = MAX_DEATHS  # what failed to start once will fail again
            raise ChildGone(f"the forecast process could not start ({error})") from None
        return self._proc


def _send(stream: IO[bytes] | None, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    assert stream is not None
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes] | None) -> bytes:
    """One whole message's bytes (EOFError when the pipe closes before it is complete)."""
    assert stream is not None
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the pipe closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-message")
    return data


def _receive(stream: IO[bytes] | None) -> Any:
    """A reply; one that will not unpickle here is a failed call (the whole message was read: the stream is in step)."""
    data = _read(stream)
    try:
        return pickle.loads(data)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is the call's, not the transport's
        return False, RuntimeError(f"a reply that would not unpickle ({type(error).__name__}: {error})"), 0.0, []


_shared: FitProcess | None = None
_shared_lock = threading.Lock()


def shared_fit_process() -> FitProcess:
    """The training process's one child (created on first use, killed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FitProcess()
            atexit.register(_shared.shutdown)
        return _shared


def _forget_after_fork() -> None:
    """A forked process (a DataLoader worker) never uses nor kills its parent's child: it would start its own."""
    global _shared, _shared_lock
    _shared, _shared_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: answer each call with ``(ok, result or exception, CPU seconds, warnings)`` until the
    parent closes the pipe."""
    held: dict[str, Any] = {}
    while True:
        try:
            data = _read(requests)
        except EOFError:
            return
        try:
            fn, args, kwargs = pickle.loads(data)
            kwargs = {k: held[k] if isinstance(v, _Same) else v for k, v in kwargs.items()}
        except Exception as error:  # noqa: BLE001 - e.g. ``fn`` not importable here: that call fails, not the child
            held = {}  # the parent, told the call failed, sends every argument whole next time
            message = f"a request that would not unpickle in the forecast process ({type(error).__name__}: {error})"
            _send(replies, (False, RuntimeError(message), 0.0, []))
            continue
        held = kwargs
        start = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            try:
                ok, value = True, fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - handed back to the caller, who decides
                ok, value = False, error
        notes = [(str(w.message), w.category) for w in caught]
        reply = (ok, value, time.process_time() - start, notes)
        try:
            _send(replies, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as error:  # an unpicklable result or exception
            _send(replies, (False, RuntimeError(f"{type(error).__name__}: {error}"), reply[2], notes))
