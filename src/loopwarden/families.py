"""The built-in rule tables, one module per family, gathered for the registry.

Each table module exposes ``RULES: tuple[Rule, ...]``. The blocking
detector's tables live in :mod:`loopwarden.blocking`, the ``thread`` family's
in :mod:`loopwarden.affinity`. This module is core: it names the tables by
their absolute module paths and imports them only when
:func:`default_rules` is first called, so importing the core loads no
detector package (docs/architecture.md). Add a family by adding its module
to :data:`FAMILY_MODULES`.
"""

from __future__ import annotations

import importlib

from loopwarden.rules import Rule
from loopwarden.wraps import Wrap

__all__ = ["FAMILY_MODULES", "WRAP_MODULES", "default_rules", "default_wraps"]

#: Modules (absolute) holding a ``RULES`` table, in order.
FAMILY_MODULES: tuple[str, ...] = (
    "loopwarden.blocking.sleep",
    "loopwarden.blocking.filesystem",
    "loopwarden.blocking.file_locks",
    "loopwarden.blocking.logging_sinks",
    "loopwarden.blocking.network",
    "loopwarden.blocking.polling",
    "loopwarden.blocking.database",
    "loopwarden.blocking.sync",
    "loopwarden.blocking.process",
    "loopwarden.blocking.multiprocessing",
    "loopwarden.blocking.console",
    "loopwarden.blocking.qt",
    "loopwarden.affinity.family",
    "loopwarden.blocking.qt_io",
)

#: Modules (absolute) holding a ``WRAPS`` table of :class:`~loopwarden.wraps.Wrap`.
WRAP_MODULES: tuple[str, ...] = (
    "loopwarden.qt.dispatch",
    "loopwarden.scheduling",
    "loopwarden.lock_owners",
    "loopwarden.error_hooks",
)

_cache: tuple[Rule, ...] | None = None
_wraps_cache: tuple[Wrap, ...] | None = None


def default_rules() -> tuple[Rule, ...]:
    """Every built-in rule, in family order."""
    global _cache
    if _cache is None:
        rules: list[Rule] = []
        for name in FAMILY_MODULES:
            rules.extend(importlib.import_module(name).RULES)
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
