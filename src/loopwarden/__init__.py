"""loopwarden: catch blocking calls on event-loop threads (Qt + asyncio).

Public API::

    with loopwarden.guard(mode="raise") as warden:
        ...
    warden.findings

The names below are imported on first use (PEP 562), so ``import loopwarden``
and the configuration reader (:mod:`loopwarden.config`) load none of the
patching core: an app that ships ``activate_from_env()`` with detection off,
and the pytest plugin while ``--block-detect`` is off, pay almost nothing.
"""

from __future__ import annotations

import sys

from loopwarden import _one_copy
from loopwarden._version import __version__
from loopwarden.errors import BlockingCallError, BlockingCallWarning, ConfigError

# Not `from typing import TYPE_CHECKING`: importing typing alone costs an app
# that ships loopwarden switched off more than everything else here (mypy and
# other checkers treat this constant the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from loopwarden.allowances import Allowance, allow_blocking
    from loopwarden.api import allow, disallow, mark_blocking, unmark_blocking
    from loopwarden.env import activate_from_env
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

_one_copy.install()

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY: dict[str, str] = {
    "Allowance": "loopwarden.allowances",
    "allow_blocking": "loopwarden.allowances",
    "allow": "loopwarden.api",
    "disallow": "loopwarden.api",
    "mark_blocking": "loopwarden.api",
    "unmark_blocking": "loopwarden.api",
    "activate_from_env": "loopwarden.env",
    "expect_blocking": "loopwarden.expect",
    "FAMILIES": "loopwarden.findings",
    "Finding": "loopwarden.findings",
    "StackFrame": "loopwarden.findings",
    "NOT_BLOCKED": "loopwarden.rules",
    "Rule": "loopwarden.rules",
    "MODES": "loopwarden.modes",
    "Warden": "loopwarden.warden",
    "activate": "loopwarden.warden",
    "current_warden": "loopwarden.warden",
    "deactivate": "loopwarden.warden",
    "guard": "loopwarden.warden",
    "keep_installed": "loopwarden.warden",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwarden' has no attribute {name!r}")
    __import__(module)
    value = getattr(sys.modules[module], name)
    # Cache it: later lookups are ordinary module attributes.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
