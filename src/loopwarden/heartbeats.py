"""Heartbeats: how the stall watchdog asks a loop "are you still responsive?".

A heartbeat is a cheap callback posted to a loop from the watchdog thread; the
loop runs it as soon as it gets back to its queue and records the time. While
it has not come back, the loop is stalled.

Two kinds of loop are watched:

* asyncio loops (plain asyncio, uvloop, qasync, PySide6.QtAsyncio): the
  heartbeat is ``loop.call_soon_threadsafe(...)``;
* the Qt GUI thread's event loop without asyncio: the heartbeat is an event
  posted with ``QCoreApplication.postEvent`` (thread-safe) to a small receiver
  object living in the GUI thread.

This module also finds loops by looking at the stacks of the process's threads
(:func:`find_loop`), so loops doing pure CPU work, which never call a patched
primitive, are watched as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from loopwarden import threads

__all__ = ["AsyncioHeartbeat", "Heartbeat", "QtHeartbeat", "find_loop"]

Clock = Callable[[], float]


class Heartbeat:
    """The watchdog's view of one guarded loop thread.

    Attributes:
        thread_id: ``threading.get_ident()`` of the loop's thread.
        description: How findings name the loop.
        outstanding: A heartbeat was posted and has not run yet.
        ran_at: Clock time at which the outstanding heartbeat ran, or None.
        timed_since: Clock time from which the outstanding heartbeat is being
            timed; None while the loop is not running (a stopped loop is not
            a stalled one).
        beats: How many heartbeats came back (for statistics and tests).
    """

    def __init__(self, thread_id: int, description: str, clock: Clock) -> None:
        self.thread_id = thread_id
        self.description = description
        self.clock = clock
        self.outstanding = False
        self.ran_at: float | None = None
        self.timed_since: float | None = None
        self.beats = 0
        self._cpu_clock: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # Windows; or the thread is gone
            self._cpu_clock = time.pthread_getcpuclockid(thread_id)

    def cpu_time(self) -> float | None:
        """CPU seconds the loop thread has used, or None where unsupported."""
        if self._cpu_clock is None:
            return None
        try:
            return time.clock_gettime(self._cpu_clock)
        except OSError:  # the thread ended
            return None

    def _ran(self) -> None:
        # Runs on the loop thread: keep it to a clock read and two stores.
        self.ran_at = self.clock()
        self.beats += 1

    def post(self) -> bool:
        """Post one heartbeat; False if the loop cannot take it any more."""
        raise NotImplementedError

    def running(self) -> bool:
        """True while the loop runs on its thread."""
        raise NotImplementedError

    def gone(self) -> bool:
        """True once the loop can never run again (closed, application gone)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the heartbeat holds (called when the watch ends)."""


class AsyncioHeartbeat(Heartbeat):
    """Heartbeat of an asyncio loop, posted with ``call_soon_threadsafe``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int, clock: Clock) -> None:
        cls = type(loop)
        super().__init__(thread_id, f"asyncio loop {cls.__module__}.{cls.__qualname__}", clock)
        self.loop = loop

    def post(self) -> bool:
        """Post a heartbeat with ``call_soon_threadsafe``."""
        try:
            self.loop.call_soon_threadsafe(self._ran)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def running(self) -> bool:
        """True while the loop runs, on this thread."""
        loop = self.loop
        if loop.is_closed() or not loop.is_running():
            return False
        # BaseEventLoop records its thread while it runs: the same loop object
        # could run on another thread later.
        owner = getattr(loop, "_thread_id", None)
        return owner is None or owner == self.thread_id

    def gone(self) -> bool:
        """True once the loop is closed."""
        return self.loop.is_closed()


class QtHeartbeat(Heartbeat):
    """Heartbeat of the Qt GUI thread's own event loop (no asyncio).

    The thread must have a probe in :data:`loopwarden.threads.thread_probes`
    (the Qt integration registers one for the GUI thread). When a heartbeat
    is delivered, the probe is asked *on the GUI thread* whether a loop runs
    there; while the application's thread has no running event loop
    (``QThread.loopLevel() == 0``, read the same way PySide6.QtAsyncio's
    ``is_running`` does) the heartbeat is not timed.
    """

    def __init__(self, thread_id: int, clock: Clock) -> None:
        super().__init__(thread_id, "Qt event loop", clock)
        from PySide6.QtCore import QCoreApplication, QEvent, QObject

        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("no QCoreApplication")
        self.app = app
        self.qthread = app.thread()
        self.mismatch = False  # the thread is not the application's thread
        event_type = QEvent.Type(QEvent.registerEventType())
        self._event_type = event_type
        heartbeat = self

        class _Receiver(QObject):
            def event(self, event: QEvent) -> bool:
                if event.type() == event_type:
                    heartbeat._delivered()
                    return True
                return super().event(event)

        # Created here (the watchdog thread), then handed to the GUI thread:
        # moveToThread must be called from the object's current thread.
        self.receiver = _Receiver()
        self.receiver.moveToThread(self.qthread)
        self._make_event: Callable[[], QEvent] = lambda: QEvent(event_type)
        self._post: Callable[[Any, QEvent], None] = QCoreApplication.postEvent

    def _delivered(self) -> None:
        # On the GUI thread.
        ident = threading.get_ident()
        if ident != self.thread_id:
            self.mismatch = True
            return
        probe = threads.thread_probes.get(ident)
        try:
            description = probe() if probe is not None else None
        except Exception:  # a broken probe must not break the host
            description = None
        if description is None:
            self.timed_since = None  # no guarded loop: do not time this one
        else:
            self.description = description
        self._ran()

    def post(self) -> bool:
        """Post a heartbeat event to the receiver in the GUI thread."""
        if self.gone():
            return False
        self._post(self.receiver, self._make_event())
        return True

    def running(self) -> bool:
        """True while an event loop runs in the application's thread."""
        return not self.mismatch and self.qthread.loopLevel() > 0

    def gone(self) -> bool:
        """True once the application or the thread's probe is gone."""
        from PySide6.QtCore import QCoreApplication

        return (
            self.mismatch
            or QCoreApplication.instance() is not self.app
            or self.thread_id not in threads.thread_probes
        )

    def close(self) -> None:
        """Delete the receiver (on its own thread)."""
        from PySide6.QtCore import QCoreApplication

        if QCoreApplication.instance() is self.app:
            # Deleted by its own thread once that thread processes events.
            self.receiver.deleteLater()


# -- finding loops on other threads' stacks -----------------------------------

# How to get the loop out of a frame of this code object, or None.
_NO_LOOP = 0
_SELF = 1  # run_forever / run_until_complete methods: ``self`` is the loop
_RUNNER = 2  # asyncio.runners.Runner.run / asyncio.run / uvloop.run (uvloop has no frames)

_RUNNER_MODULES = frozenset({"asyncio.runners", "uvloop"})
_kinds: dict[CodeType, int] = {}


def _kind(frame: FrameType) -> int:
    code = frame.f_code
    kind = _kinds.get(code)
    if kind is None:
        name = code.co_name
        if name in ("run_forever", "run_until_complete"):
            kind = _SELF
        elif name == "run" and frame.f_globals.get("__name__") in _RUNNER_MODULES:
            kind = _RUNNER
        else:
            kind = _NO_LOOP
        _kinds[code] = kind
    return kind


def _loop_in(frame: FrameType, kind: int) -> asyncio.AbstractEventLoop | None:
    # f_locals is only read on the few frames whose code matched above.
    local_vars = frame.f_locals
    candidates: list[object] = [local_vars.get("self")]
    if kind == _RUNNER:
        candidates.append(getattr(local_vars.get("self"), "_loop", None))
        candidates.append(local_vars.get("loop"))
    for candidate in candidates:
        if isinstance(candidate, asyncio.AbstractEventLoop):
            return candidate
    return None


def find_loop(frame: FrameType | None) -> asyncio.AbstractEventLoop | None:
    """The innermost running asyncio loop driven from this stack, or None.

    Finds loops by their driving frame: ``run_forever`` or
    ``run_until_complete`` of any loop class (asyncio, qasync, QtAsyncio),
    or, for uvloop whose loop methods are compiled and have no frame, the
    ``asyncio.Runner.run`` / ``asyncio.run`` / ``uvloop.run`` frame that
    started it.
    """
    f = frame
    while f is not None:
        kind = _kind(f)
        if kind != _NO_LOOP:
            loop = _loop_in(f, kind)
            if loop is not None and loop.is_running():
                return loop
        f = f.f_back
    return None


def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()``: the topmost frame of every thread."""
    return sys._current_frames()


def monotonic() -> float:
    """The default clock."""
    return time.monotonic()
