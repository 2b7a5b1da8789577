"""Family ``thread``: calls made from the wrong thread (asyncio loop objects, Qt GUI objects).

The rules live in :mod:`~loopwarden.affinity.asyncio_rules` and
:mod:`~loopwarden.affinity.qt_rules`; this module is the family's entry in
:data:`loopwarden.families.FAMILY_MODULES`, so the registry, the rules
reference and ``python -m loopwarden rules`` treat them like any other family.
"""

from __future__ import annotations

from loopwarden.affinity import RULES

__all__ = ["RULES"]
