"""The ``posetokens`` console command, from outside the package so that its first imports can be interrupted.

Importing :mod:`posetokens.cli` imports the package and PyTorch (about a second), before any code of ours can catch
Ctrl-C. A KeyboardInterrupt raised inside those imports printed Python's traceback, or was swallowed by the
library being imported (the command then ran on, or failed later on a half-imported module). So while they run, a
Ctrl-C is only noted; once they are done the command stops with ``posetokens: interrupted`` (exit 130), as an
interrupt later in a command does (:func:`posetokens.cli.run_command`). A second Ctrl-C during the imports (one that
hangs) stops them at once. This module imports nothing else first: ``_signal`` is the interpreter's built-in part
of :mod:`signal` (which would import ``enum`` and more before the handler is set).
"""

from __future__ import annotations

import _signal
import sys


def main() -> int:
    """Run the ``posetokens`` command line; Ctrl-C at any point is one line on stderr and exit code 130."""
    noted: list[int] = []
    previous = _signal.getsignal(_signal.SIGINT)
    deferring = previous is _signal.default_int_handler  # not where Ctrl-C is ignored (a background job)

    def note(signum: int, frame: object) -> None:
        if noted:  # a second Ctrl-C: the imports hang, stop them
            _signal.signal(_signal.SIGINT, previous)
            raise KeyboardInterrupt
        noted.append(signum)

    if deferring:
        _signal.signal(_signal.SIGINT, note)
    try:
        from posetokens.cli import main as cli_main
    finally:
        if deferring:
            _signal.signal(_signal.SIGINT, previous)
    if noted:
        print("posetokens: interrupted", file=sys.stderr)
        return 130
    try:
        return cli_main()
    except KeyboardInterrupt:  # between the imports and the command's own handler
        print("posetokens: interrupted", file=sys.stderr)
        return 130
