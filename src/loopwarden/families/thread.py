"""Family ``thread``: calls made from the wrong thread (asyncio loop objects, Qt GUI objects).

The rules live with their detector in :mod:`loopwarden.affinity`; this module
only lists them among the built-in families.
"""

from __future__ import annotations

from loopwarden.affinity import RULES

__all__ = ["RULES"]
