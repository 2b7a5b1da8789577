"""``python -m loopwarden``: see :mod:`loopwarden.cli` for the commands and exit codes."""

from __future__ import annotations

import sys

from loopwarden.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
