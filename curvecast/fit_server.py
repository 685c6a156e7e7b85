"""The forecast process's entry point (``python -m curvecast.fit_server``): the child that ``FitProcess`` starts.

Apart from ``curvecast.fit_process`` so that the loop run here is that module's, whose classes (``_Same``) are the
ones the parent's pickles name (run as ``-m``, a module is ``__main__``, a copy of itself).
"""

from __future__ import annotations

import os
import signal
import sys

from curvecast.fit_process import CHILD_NICE, serve


def main() -> None:
    # The parent decides when the child ends (EOF on its stdin, or a kill): a Ctrl-C at the terminal, which reaches
    # the whole process group, must not print a traceback from here while the training shuts down gracefully.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        os.nice(CHILD_NICE)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print goes to stderr, never into the reply pipe
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
