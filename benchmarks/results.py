"""Recording a benchmark's printed results into benchmarks/README.md, dated, with the machine and the command line.

Each script's results live in ``benchmarks/README.md`` between two markers, ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->``. A script run as ``__main__`` wraps its ``main()`` in :func:`recorded`, which passes
through everything it prints and, when ``main()`` returns, replaces that block with the date (UTC), the machine, the
command line and the printed text:

    if __name__ == "__main__":
        from results import recorded

        with recorded("history_memory"):
            main()

``--no-record`` on the command line (taken out before ``main()`` parses it) leaves the file alone, and so does a run
that raises or exits early (``--help``, a bad argument, Ctrl-C). Only what goes to stdout is kept: progress on stderr
is not. Importing a script or calling its ``main()`` records nothing.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TextIO

__all__ = ["NO_RECORD", "README", "machine", "record", "recorded"]

README = Path(__file__).resolve().parent / "README.md"
NO_RECORD = "--no-record"

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def machine() -> str:
    """The machine a benchmark ran on, in a few words: platform, CPU count, Python."""
    return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name} -->", f"<!-- /results:{name} -->"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _clean(text: str) -> str:
    """Printed text as it ended up on screen: a line rewritten in place (``\\r``) keeps its last state."""
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _block(text: str, *, command: str, when: date, where: str) -> str:
    body = _clean(text)
    fence = _fence(body)
    return f"Measured {when.isoformat()} on {where}:\n\n```bash\n{command}\n```\n\n{fence}text\n{body}\n{fence}"


def record(
    script: str,
    text: str,
    *,
    path: Path | str = README,
    command: str | None = None,
    when: date | None = None,
    where: str | None = None,
) -> None:
    """Replace the results block of ``script`` in ``path`` with ``text`` (what the script printed).

    Args:
        script: the block's name, usually the script's (``"calibrate"``); a mode of a script that prints other
            results can have a block of its own (``"forecast_accuracy.references"``).
        text: what the script printed.
        path: the file holding the blocks.
        command: the command line shown; defaults to this process's (``python benchmarks/NAME.py ARGS``).
        when: the date shown; defaults to today in UTC.
        where: the machine shown; defaults to :func:`machine`.

    Everything outside the block is left as it was. A block that is not there yet is added at the end of the file,
    under a heading of its own.
    """
    if not _NAME.fullmatch(script):
        raise ValueError(f"`script` must be letters, digits, '_', '.' or '-', but got {script!r}")
    path = Path(path)
    if command is None:
        command = shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    when = when if when is not None else datetime.now(timezone.utc).date()
    block = _block(text, command=command, when=when, where=where if where is not None else machine())
    start, end = _markers(script)
    document = path.read_text(encoding="utf-8")
    head, found, rest = document.partition(start)
    if found:
        _, closed, tail = rest.partition(end)
        if not closed:
            raise ValueError(f"`{start}` in {path} must be closed by `{end}`, but no such line follows it")
        document = f"{head}{start}\n{block}\n{end}{tail}"
    else:
        document = f"{document.rstrip()}\n\n## {script}\n\n{start}\n{block}\n{end}\n"
    # Written beside the file and moved over it, so an interrupted write never leaves half a README.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(document, encoding="utf-8")
    os.replace(temporary, path)


class _Tee(io.TextIOBase):
    """Writes go to ``stream`` and are kept; everything else (``isatty``, ``fileno``, ``encoding``) is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def recorded(script: str, *, path: Path | str = README) -> Iterator[None]:
    """Pass stdout through and, if the body returns, :func:`record` what it printed under ``script``.

    ``--no-record`` in ``sys.argv`` is removed before the body runs and turns recording off.
    """
    enabled = NO_RECORD not in sys.argv[1:]
    sys.argv[1:] = [arg for arg in sys.argv[1:] if arg != NO_RECORD]
    command = shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    pid = os.getpid()
    original = sys.stdout
    tee = _Tee(original)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = original
    text = tee.kept.getvalue()
    if enabled and text.strip() and os.getpid() == pid:  # a forked child that returns here records nothing
        record(script, text, path=path, command=command)
        print(f"(recorded in {Path(path).name}, block {script!r}; {NO_RECORD} leaves it alone)", file=sys.stderr)
