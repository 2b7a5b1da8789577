"""The built-in rule tables, one module per family.

Each family module exposes ``RULES: tuple[Rule, ...]``. Add a family by
adding its module name to :data:`FAMILY_MODULES`.
"""

from __future__ import annotations

import importlib

from loopwarden.rules import Rule
from loopwarden.wraps import Wrap

__all__ = ["FAMILY_MODULES", "WRAP_MODULES", "default_rules", "default_wraps"]

#: Modules (relative to this package) holding a ``RULES`` table, in order.
FAMILY_MODULES: tuple[str, ...] = (
    "sleep",
    "filesystem",
    "file_locks",
    "logging_sinks",
    "network",
    "polling",
    "database",
    "sync",
    "process",
    "multiprocessing",
    "console",
    "qt",
    "thread",
    "qt_io",
)

#: Modules (absolute) holding a ``WRAPS`` table of :class:`~loopwarden.wraps.Wrap`.
WRAP_MODULES: tuple[str, ...] = (
    "loopwarden.qt.dispatch",
    "loopwarden.scheduling",
    "loopwarden.lock_owners",
)

_cache: tuple[Rule, ...] | None = None
_wraps_cache: tuple[Wrap, ...] | None = None


def default_rules() -> tuple[Rule, ...]:
    """Every built-in rule, in family order."""
    global _cache
    if _cache is None:
        rules: list[Rule] = []
        for name in FAMILY_MODULES:
            module = importlib.import_module(f"{__name__}.{name}")
            rules.extend(module.RULES)
        _cache = tuple(rules)
    return _cache


def default_wraps() -> tuple[Wrap, ...]:
    """Every built-in wrap (patches that mark, not detect)."""
    global _wraps_cache
    if _wraps_cache is None:
        wraps: list[Wrap] = []
        for name in WRAP_MODULES:
            wraps.extend(importlib.import_module(name).WRAPS)
        _wraps_cache = tuple(wraps)
    return _wraps_cache
