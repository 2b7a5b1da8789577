"""loopwarden: catch blocking calls on event-loop threads (Qt + asyncio).

Public API::

    with loopwarden.guard(mode="raise") as warden:
        ...
    warden.findings
"""

from __future__ import annotations

from loopwarden._version import __version__
from loopwarden.allowances import Allowance, allow_blocking
from loopwarden.api import allow, disallow, mark_blocking, unmark_blocking
from loopwarden.env import activate_from_env
from loopwarden.errors import BlockingCallError, BlockingCallWarning, ConfigError
from loopwarden.expect import expect_blocking
from loopwarden.findings import FAMILIES, Finding, StackFrame
from loopwarden.rules import NOT_BLOCKED, Rule
from loopwarden.warden import (
    MODES,
    Warden,
    activate,
    current_warden,
    deactivate,
    guard,
    keep_installed,
)

__all__ = [
    "FAMILIES",
    "MODES",
    "NOT_BLOCKED",
    "Allowance",
    "BlockingCallError",
    "BlockingCallWarning",
    "ConfigError",
    "Finding",
    "Rule",
    "StackFrame",
    "Warden",
    "__version__",
    "activate",
    "activate_from_env",
    "allow",
    "allow_blocking",
    "current_warden",
    "deactivate",
    "disallow",
    "expect_blocking",
    "guard",
    "keep_installed",
    "mark_blocking",
    "unmark_blocking",
]
