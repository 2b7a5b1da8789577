"""Learn when an event loop starts running, on which thread.

Every pure-Python loop announces itself through
``asyncio.events._set_running_loop(loop)`` when it starts running:
``BaseEventLoop.run_forever`` (asyncio), qasync's and PySide6.QtAsyncio's
``run_forever``. While the stall watchdog runs, that function is wrapped so
the watchdog hears of each loop as it starts, on its own thread, without
looking at other threads' stacks (which CPython 3.11 does not make safe:
a frame object taken from ``sys._current_frames()`` can dangle and crash
the interpreter on ``f_back``).

uvloop binds ``asyncio._set_running_loop`` when it is imported, usually
before loopwarden starts, so its loops are not announced this way; the
watchdog finds them by their ``asyncio.run``/``uvloop.run`` frame instead
(:func:`loopwarden.watchdog.heartbeats.find_loop`).

The wrapper costs one ``None`` test on every call when no one listens; if
other code wrapped the function after us, our wrapper stays in place (it
passes calls through) rather than undoing theirs.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import logging
import threading
from collections.abc import Callable
from typing import Any

from loopwarden.uninterruptible import OwnLock

__all__ = ["install", "uninstall"]

logger = logging.getLogger("loopwarden")

Listener = Callable[[asyncio.AbstractEventLoop, int], None]

_original: Callable[[Any], None] | None = None
_listener: Listener | None = None
_lock = OwnLock()  # atomic under Ctrl-C, never through our own lock patches


def _wrapper(loop: Any) -> None:
    assert _original is not None
    _original(loop)
    listener = _listener
    if listener is not None and loop is not None:
        try:
            listener(loop, threading.get_ident())
        except Exception:  # the loop must start whatever happens to us
            logger.debug("loopwarden: noting a loop start failed", exc_info=True)


def install(listener: Listener) -> None:
    """Call ``listener(loop, thread_id)`` whenever a loop starts running."""
    global _original, _listener
    with _lock:
        _listener = listener
        current = asyncio.events._set_running_loop
        if current is _wrapper:
            return
        if _original is not None and current is not _original:
            # Someone replaced it since (maybe wrapping ours): leave theirs.
            return
        _original = current
        asyncio.events._set_running_loop = _wrapper
        if getattr(asyncio, "_set_running_loop", None) is current:
            asyncio._set_running_loop = _wrapper


def uninstall() -> None:
    """Stop listening; restore the original function if ours is still in place."""
    global _listener
    with _lock:
        _listener = None
        if _original is None:
            return
        if asyncio.events._set_running_loop is _wrapper:
            asyncio.events._set_running_loop = _original
        if getattr(asyncio, "_set_running_loop", None) is _wrapper:
            asyncio._set_running_loop = _original
