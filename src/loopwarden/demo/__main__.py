"""``python -m loopwarden.demo``: the same as ``python -m loopwarden demo``."""

from __future__ import annotations

import sys

from loopwarden.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
