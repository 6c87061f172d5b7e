"""``python -m posetokens``."""

import sys

from posetokens.cli import main

sys.exit(main())
