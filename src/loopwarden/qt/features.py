"""PySide6's feature selection (``from __feature__ import snake_case``), as it affects the Qt rules.

A module that imports a PySide6 feature sees each Qt class through a namespace
of its own (a *feature set*): ``snake_case`` names the methods anew
(``read_all`` for ``readAll``), ``true_property`` turns getters and setters into
properties. PySide6 builds those namespaces from the class's C method table,
not from the patched attributes, so the Qt rules do not see the calls such a module
makes. Instead of missing those calls in silence, the warden says
once per module, when it is switched on, which modules it cannot check.

PySide6 keeps its table of modules and their feature sets in
``__feature__.pyside_feature_dict`` (module name -> feature bits, 0 for none,
-1 for a module that does not use PySide6); it is read here, never written.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["FEATURE_NAMES", "feature_modules", "warn_feature_modules"]

logger = logging.getLogger("loopwarden")

#: PySide6's feature bits, by the name a module imports.
FEATURE_NAMES: dict[int, str] = {0x01: "snake_case", 0x02: "true_property"}

_warned: set[str] = set()
#: The size of PySide6's table when it was last read: a module enters it when
#: it is imported, so an unchanged size means nothing new to say.
_seen_size = -1


def feature_modules() -> dict[str, tuple[str, ...]]:
    """Modules that use a PySide6 feature, with the features' names.

    Returns:
        ``{module name: ("snake_case", ...)}``; empty without PySide6 or when
        no module imports a feature.
    """
    feature = sys.modules.get("__feature__")
    table = getattr(feature, "pyside_feature_dict", None)
    if not isinstance(table, dict):
        return {}
    modules: dict[str, tuple[str, ...]] = {}
    for name, bits in list(table.items()):  # (copied: an import may add to it meanwhile)
        if isinstance(name, str) and isinstance(bits, int) and bits > 0:
            modules[name] = tuple(
                FEATURE_NAMES.get(bit, hex(bit)) for bit in (1 << i for i in range(8)) if bits & bit
            )
    return modules


def warn_feature_modules() -> None:
    """Warn once per module that uses a PySide6 feature: its feature-named Qt calls go unchecked."""
    global _seen_size
    feature = sys.modules.get("__feature__")
    table = getattr(feature, "pyside_feature_dict", None)
    if not isinstance(table, dict) or len(table) == _seen_size:
        return
    _seen_size = len(table)
    for name, features in feature_modules().items():
        if name in _warned:
            continue
        _warned.add(name)
        # The page docs/troubleshooting.md has this message as a heading.
        logger.warning(
            "loopwarden: module %r imports PySide6 features (from __feature__ import %s): "
            "PySide6 gives it its own copy of every Qt class's methods, which the Qt rules do "
            "not see; the same calls made from a module without that import are checked",
            name,
            ", ".join(features),
        )
