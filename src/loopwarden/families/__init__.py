"""The built-in rule tables, one module per family.

Each family module exposes ``RULES: tuple[Rule, ...]``. Add a family by
adding its module name to :data:`FAMILY_MODULES`.
"""

from __future__ import annotations

import importlib

from loopwarden.rules import Rule

__all__ = ["FAMILY_MODULES", "default_rules"]

#: Modules (relative to this package) holding a ``RULES`` table, in order.
FAMILY_MODULES: tuple[str, ...] = (
    "sleep",
    "filesystem",
    "network",
    "database",
    "sync",
    "process",
    "console",
    "qt",
)

_cache: tuple[Rule, ...] | None = None


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
