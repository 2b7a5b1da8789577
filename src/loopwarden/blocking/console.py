"""Family ``console``: waiting for someone to type."""

from __future__ import annotations

import os
import sys
from typing import Any

from loopwarden.rules import Rule

__all__ = ["RULES"]

_CONSOLE = (
    "Reading the console waits for a person. Read stdin without blocking the loop: "
    "`await asyncio.to_thread(input, prompt)`, or an asyncio StreamReader connected with "
    "`loop.connect_read_pipe(...)`; in a Qt application ask with a dialog (QInputDialog)."
)


def _stdin_blocks(*_: object, **__: object) -> bool:
    """input() waits unless stdin is a descriptor in non-blocking mode."""
    stdin: Any = sys.stdin
    if stdin is None:
        return False  # no console at all (pythonw): input() fails at once
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return True  # a replaced stdin without a descriptor: assume it waits
    try:
        return os.get_blocking(fd)
    except OSError:
        return True


RULES: tuple[Rule, ...] = (
    Rule(
        target="builtins:input",
        family="console",
        suggestion=_CONSOLE,
        blocks_when=_stdin_blocks,
        condition="sys.stdin is in blocking mode",
    ),
    Rule(
        target="getpass:getpass",
        family="console",
        suggestion=_CONSOLE,
        condition="always: waits for the terminal (or stdin)",
    ),
)
