"""Critical sections that an exception from a signal handler cannot leave half done.

A Python signal handler runs on the main thread between two bytecodes,
wherever that thread is, and what it raises (``KeyboardInterrupt`` for
Ctrl-C) appears there. ``signal.pthread_sigmask`` cannot hold it off: a
signal that already arrived is handled at the next check anyway. So
loopwarden's activation and deactivation are written to survive it:

* :class:`OwnLock` guards loopwarden's own state. ``with lock:`` on it calls
  C code directly (no Python frame, so no point where a signal is handled
  between taking the lock and entering the block), and it never goes
  through loopwarden's own patches of ``threading.Lock``/``RLock``, whose
  Python wrappers would add such a point.
* :func:`finish` runs an idempotent step again until it completes, so an
  interrupted deactivation is completed; the caller re-raises the first
  exception afterwards, so the Ctrl-C still reaches the application.

Each step is written so that being interrupted at any statement and run
again converges on the same state (restore what is still patched, remove
what is still registered).
"""

from __future__ import annotations

import _thread
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["OwnLock", "finish", "unpatched"]

logger = logging.getLogger("loopwarden")

#: How often :func:`finish` runs a step that keeps failing before giving up.
MAX_ROUNDS = 8


def unpatched(owner: type, name: str) -> Any:
    """``owner.__dict__[name]`` as it was before loopwarden patched it."""
    value = owner.__dict__[name]
    if getattr(value, "__loopwarden_rule__", None) is not None:
        return value.__wrapped__
    return value


class OwnLock(_thread.RLock):  # type: ignore[misc]  # subclassable at run time
    """A re-entrant lock for loopwarden's own state, atomic under signals.

    Its methods are the C methods of ``_thread.RLock`` captured before any
    patching: ``with lock:`` takes the lock and enters the block with no
    bytecode in between, as with an unpatched lock.
    """

    __slots__ = ()
    __enter__ = unpatched(_thread.RLock, "__enter__")
    __exit__ = unpatched(_thread.RLock, "__exit__")
    acquire = unpatched(_thread.RLock, "acquire")
    release = unpatched(_thread.RLock, "release")


def finish(step: Callable[[], object], what: str = "cleanup") -> None:
    """Run ``step`` until it completes without an exception.

    Meant for an ``except BaseException:`` handler that must complete an
    interrupted cleanup before re-raising: exceptions from ``step`` are
    dropped (the caller re-raises the first one). ``step`` must be
    idempotent, each run continuing where an interrupted one stopped. A step
    that fails :data:`MAX_ROUNDS` times in a row is a bug, not a signal: it
    is logged and given up.
    """
    for _ in range(MAX_ROUNDS):
        try:
            step()
            return
        except BaseException:  # noqa: BLE001 - another interruption: run it again
            continue
    logger.error("loopwarden: the %s failed %d times; giving up", what, MAX_ROUNDS)
