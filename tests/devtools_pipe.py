"""Headless Chromium driven over ``--remote-debugging-pipe``: the DevTools protocol on file descriptors 3 and 4, no
port and no extra package. Used by the page's tests and by ``benchmarks/tab_many_runs.py``."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["CHROMIUM", "DevTools"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """One headless Chromium with one page attached; what a page throws arrives in :attr:`events` as
    ``Runtime.exceptionThrown`` (a ``pageerror``), uncaught rejections included.

    Args:
        profile: the browser's user-data directory (created).
        window: the window size, ``"width,height"``.
    """

    def __init__(self, profile: Path, window: str = "1280,1100") -> None:
        if CHROMIUM is None:
            raise FileNotFoundError("Chromium is not installed (apt-get install chromium)")
        to_chromium, self._write = os.pipe()
        self._read, from_chromium = os.pipe()
        # Copies numbered 10 or more, so that placing them on 3 and 4 in the child overwrites neither.
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chromium, from_chromium))
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={window}",
                   "--remote-debugging-pipe", "about:blank"]  # fmt: skip

        def place_pipes() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self._process = subprocess.Popen(command, pass_fds=(3, 4), preexec_fn=place_pipes,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        for fd in (to_chromium, from_chromium, child_in, child_out):
            os.close(fd)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Page"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 300) -> dict:
        """The result of ``method`` (an error reads as ``{"error": ...}``), the events before it collected."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline - time.monotonic())
            if reply.get("id") == self._id:
                return reply.get("result", {"error": reply.get("error")})
            self.events.append(reply)

    def wait(self, seconds: float) -> None:
        """Collect the events of ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.events.append(self._next(deadline - time.monotonic()))
            except TimeoutError:
                return

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        return result.get("result", {}).get("value")  # None while the page is being replaced

    def until(self, expression: str, timeout: float = 300):
        """The first truthy value of ``expression``, evaluated every 20 ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError(f"the page never satisfied {expression}")

    def _next(self, timeout: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(timeout, 0))
            if not ready:
                raise TimeoutError("Chromium sent nothing in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        os.close(self._write)
        os.close(self._read)
        self._process.terminate()
        self._process.wait(timeout=60)
