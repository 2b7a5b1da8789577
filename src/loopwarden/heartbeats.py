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

__all__ = ["AsyncioHeartbeat", "Heartbeat", "QtHeartbeat", "find_loop", "make_heartbeat"]

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
        super().__init__(thread_id, _describe(loop), clock)
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
        return _asyncio_loop_running(self.loop, self.thread_id)

    def gone(self) -> bool:
        """True once the loop is closed."""
        return self.loop.is_closed()


class QtHeartbeat(Heartbeat):
    """Heartbeat of a loop run by Qt on the application's (GUI) thread.

    Two uses:

    * the GUI thread's own event loop, without asyncio: the thread must have
      a probe in :data:`loopwarden.threads.thread_probes` (the Qt integration
      registers one). When a heartbeat is delivered, the probe is asked *on
      the GUI thread* whether a guarded loop runs there. While the thread has
      no running event loop (``QThread.loopLevel() == 0``, read from the
      watchdog thread the way PySide6.QtAsyncio's ``is_running`` does) the
      heartbeat is not timed;
    * asyncio loops that Qt runs (qasync, PySide6.QtAsyncio), given as
      ``loop``: their ``call_soon_threadsafe`` goes through a PySide6 signal
      emission or ``QTimer.singleShot``, which in PySide6 6.12 on Python
      3.11 drops one reference to ``None`` per call; at the watchdog's rate
      that would crash the process after a few minutes (``none_dealloc``).

    The heartbeat is ``QMetaObject.invokeMethod(receiver, "beat",
    Qt.QueuedConnection)`` on a receiver object living in the application's
    thread: thread-safe, and free of that reference leak.
    """

    def __init__(
        self, thread_id: int, clock: Clock, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        super().__init__(thread_id, "Qt event loop", clock)
        from PySide6.QtCore import QCoreApplication, QMetaObject, Qt

        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("no QCoreApplication")
        self.app = app
        self.qthread = app.thread()
        self.loop = loop
        if loop is not None:
            self.description = _describe(loop)
        self.mismatch = False  # the thread is not the application's thread
        # Created on the calling thread, then handed to the GUI thread:
        # moveToThread must be called from the object's current thread.
        self.receiver = _receiver_class()(self)
        self.receiver.moveToThread(self.qthread)
        self._invoke = QMetaObject.invokeMethod
        self._queued = Qt.ConnectionType.QueuedConnection

    def _delivered(self) -> None:
        # On the GUI thread.
        ident = threading.get_ident()
        if ident != self.thread_id:
            self.mismatch = True
            return
        if self.loop is None:
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
        """Queue a call of the receiver's ``beat`` slot on the GUI thread."""
        if self.gone():
            return False
        self._invoke(self.receiver, "beat", self._queued)
        return True

    def running(self) -> bool:
        """True while the loop runs on the application's thread."""
        if self.mismatch:
            return False
        if self.loop is not None:
            return _asyncio_loop_running(self.loop, self.thread_id)
        return self.qthread.loopLevel() > 0

    def gone(self) -> bool:
        """True once the application, the loop or the thread's probe is gone."""
        from PySide6.QtCore import QCoreApplication

        if self.mismatch or QCoreApplication.instance() is not self.app:
            return True
        if self.loop is not None:
            return self.loop.is_closed()
        return self.thread_id not in threads.thread_probes

    def close(self) -> None:
        """Delete the receiver (on its own thread)."""
        from PySide6.QtCore import QCoreApplication

        if QCoreApplication.instance() is self.app:
            self.receiver.deleteLater()


_receiver_cls: Any = None


def _receiver_class() -> Any:
    # Defined on first use: PySide6 is an optional dependency.
    global _receiver_cls
    if _receiver_cls is None:
        from PySide6.QtCore import QObject, Slot

        class HeartbeatReceiver(QObject):
            def __init__(self, heartbeat: QtHeartbeat) -> None:
                super().__init__()
                self._heartbeat = heartbeat

            @Slot()
            def beat(self) -> None:
                self._heartbeat._delivered()

        _receiver_cls = HeartbeatReceiver
    return _receiver_cls


def _describe(loop: asyncio.AbstractEventLoop) -> str:
    cls = type(loop)
    return f"asyncio loop {cls.__module__}.{cls.__qualname__}"


def _asyncio_loop_running(loop: asyncio.AbstractEventLoop, thread_id: int) -> bool:
    if loop.is_closed() or not loop.is_running():
        return False
    # BaseEventLoop records its thread while it runs: the same loop object
    # could run on another thread later.
    owner = getattr(loop, "_thread_id", None)
    return owner is None or owner == thread_id


def make_heartbeat(loop: asyncio.AbstractEventLoop, thread_id: int, clock: Clock) -> Heartbeat:
    """The right heartbeat for an asyncio loop: Qt-run loops get a Qt one."""
    if type(loop).__module__.partition(".")[0] in ("qasync", "PySide6"):
        try:
            return QtHeartbeat(thread_id, clock, loop)
        except Exception:  # no application: fall back to asyncio's own way
            pass
    return AsyncioHeartbeat(loop, thread_id, clock)


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
