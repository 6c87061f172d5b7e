"""The ``posetokens`` console command, from outside the package so that its first import can be interrupted.

Importing :mod:`posetokens.cli` imports the package and PyTorch (about a second), before any code of ours can catch
Ctrl-C: an interrupt then printed Python's traceback. This module imports nothing heavy itself and says
``posetokens: interrupted`` (exit 130), as an interrupt later in a command does (:func:`posetokens.cli.run_command`).
"""

from __future__ import annotations

import sys


def main() -> int:
    """Run the ``posetokens`` command line; Ctrl-C at any point is one line on stderr and exit code 130."""
    try:
        from posetokens.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:  # during the imports, or between them and the command's own handler
        print("posetokens: interrupted", file=sys.stderr)
        return 130
