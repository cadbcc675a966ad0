"""``python -m transferlimits``: the command line (:mod:`transferlimits.cli`).

An interrupted command exits 130 through :func:`_exit_interrupted`, not ``SystemExit``: under ``-m``, CPython
(3.11, 3.12) remembers a KeyboardInterrupt that ended any code run by ``exec`` of a string (``dataclasses`` builds
its methods that way at import) even when the caller catches it, and ``Py_RunMain`` then kills the process with
SIGINT (exit -2) instead of returning the code (seen in about half of the Ctrl-C-at-start-up tests on a loaded
machine). The exit handlers still run; only the interpreter's own final check is skipped.
"""

import atexit
import os
import signal
import sys


def _exit_interrupted() -> None:
    """Run the exit handlers, flush, and leave with 130 without the interpreter's SIGINT re-kill."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)


try:
    from transferlimits.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package itself is imported: nothing has started yet
    print("interrupted; nothing was started.", file=sys.stderr)
    _exit_interrupted()

code = main()
if code == 130:
    _exit_interrupted()
raise SystemExit(code)
