"""Thread affinity: calls made from the wrong thread (finding family ``thread``).

The third detector over loopwarden's core, beside the blocking-call patches
and the stall watchdog. Blocking asks "does this call freeze the loop
thread?"; affinity asks the reverse: "does this call touch, from another
thread, what belongs to the loop thread?" Such calls do not freeze the app:
they crash it at random or silently lose work (a ``loop.call_soon`` that
waits for something else to wake the loop, a ``QTimer.singleShot`` whose
callback never runs).

* :mod:`~loopwarden.affinity.checks`: the wrappers (the owner-thread test)
  and the findings they make;
* :mod:`~loopwarden.affinity.asyncio_rules` and
  :mod:`~loopwarden.affinity.qt_rules`: what is patched, as
  :class:`~loopwarden.Rule` data installed by the core's registry
  (``Rule.wrap`` supplies our wrapper instead of the blocking one);
* :mod:`~loopwarden.affinity.qt_messages`: Qt's own thread warnings as
  findings (a Qt message handler, while a warden is active).

Importing this package hooks the message handler into warden activation. It
does not import PySide6.
"""

from __future__ import annotations

from loopwarden import warden as _warden
from loopwarden.affinity import qt_messages
from loopwarden.affinity.asyncio_rules import RULES as ASYNCIO_RULES
from loopwarden.affinity.qt_rules import RULES as QT_RULES

__all__ = ["ASYNCIO_RULES", "QT_RULES", "RULES"]

#: Every rule of the ``thread`` family.
RULES = (*ASYNCIO_RULES, *QT_RULES)

if qt_messages.sync not in _warden.state_hooks:
    _warden.state_hooks.append(qt_messages.sync)
