"""Heartbeats: a loop tells the stall watchdog "I am still responsive".

A heartbeat is a cheap timer that runs *on the loop* every ``interval``
seconds and stores the time it ran. The watchdog thread only reads those
times: when the next beat is overdue by the threshold, the loop is stalled.
Keeping the timer on the loop (rather than posting a callback from the
watchdog for every check) matters when the watchdog itself cannot run: a busy
Qt loop can starve other threads of the GIL for a second or more while
staying responsive, and the beats it keeps recording show that it was.

Two kinds of heartbeat:

* :class:`AsyncioHeartbeat` for asyncio and uvloop: started with
  ``loop.call_soon_threadsafe``, then re-armed with ``loop.call_later``;
* :class:`QtHeartbeat` for loops Qt runs on the application's thread
  (the GUI thread's own event loop without asyncio, qasync, QtAsyncio): a
  ``QTimer`` owned by a small receiver object living in that thread,
  started with a queued ``QMetaObject.invokeMethod``.

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
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from loopwarden import threads

__all__ = ["AsyncioHeartbeat", "Heartbeat", "QtHeartbeat", "find_loop", "make_heartbeat"]

Clock = Callable[[], float]


class Heartbeat:
    """A timer beating on one guarded loop, as seen by the watchdog.

    The loop thread writes ``last_beat``, ``beats`` and ``worst_late``; the
    watchdog thread reads them (single stores and loads: no lock needed).

    Attributes:
        thread_id: ``threading.get_ident()`` of the loop's thread.
        description: How findings name the loop.
        interval: Seconds between beats.
        last_beat: Clock time of the latest beat, or None before the first.
        beats: How many beats ran (for statistics and tests).
        worst_late: Largest delay of a beat past its due time since the
            watchdog last took it (:meth:`take_worst_late`), in seconds.
        running_since: Clock time the loop last started running, when known
            (an asyncio loop announces it, on its thread): a beat is never due
            before its loop runs, so time the loop spent stopped is no lateness.
        discard_next: Set by the watchdog when it sees a loop run again that it
            saw stopped, start time unknown (Qt's own loops): the next beat
            measures no lateness, its delay being partly the time stopped.
    """

    def __init__(self, thread_id: int, description: str, clock: Clock, interval: float) -> None:
        self.thread_id = thread_id
        self.description = description
        self.clock = clock
        self.interval = interval
        self.last_beat: float | None = None
        self.beats = 0
        self.worst_late = 0.0
        self.stopped = False
        self.running_since: float | None = None
        self.discard_next = False

    def _beat(self) -> None:
        # Runs on the loop thread: a clock read, a subtraction, a few stores.
        now = self.clock()
        last = self.last_beat
        if self.discard_next:
            self.discard_next = False
        elif last is not None:
            # Due one interval after the last beat, but never before the loop
            # (re)started: a beat left pending in a stopped loop runs at once
            # when it runs again, and the time between is not a stall.
            due = last + self.interval
            since = self.running_since
            if since is not None and since > due:
                due = since
            late = now - due
            if late > self.worst_late:
                self.worst_late = late
        self.last_beat = now
        self.beats += 1

    def take_worst_late(self) -> float:
        """Return :attr:`worst_late` and start over."""
        worst, self.worst_late = self.worst_late, 0.0
        return worst

    def start(self) -> bool:
        """Ask the loop thread to start beating; False if it cannot."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop beating and release what the heartbeat holds."""
        self.stopped = True

    def running(self) -> bool:
        """True while the loop runs on its thread."""
        raise NotImplementedError

    def gone(self) -> bool:
        """True once the loop can never run again (closed, application gone)."""
        raise NotImplementedError


class AsyncioHeartbeat(Heartbeat):
    """Heartbeat of an asyncio or uvloop loop: a self re-arming ``call_later``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, thread_id: int, clock: Clock, interval: float
    ) -> None:
        super().__init__(thread_id, _describe(loop), clock, interval)
        self.loop = loop
        self._handle: asyncio.TimerHandle | None = None

    def _beat(self) -> None:
        if self.stopped:
            return
        super()._beat()
        self._handle = self.loop.call_later(self.interval, self._beat)

    def start(self) -> bool:
        """Schedule the first beat with ``call_soon_threadsafe``."""
        try:
            self.loop.call_soon_threadsafe(self._beat)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def stop(self) -> None:
        """Stop re-arming and cancel the pending beat (on the loop thread)."""
        super().stop()
        handle = self._handle
        if handle is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: the handle went too
                self.loop.call_soon_threadsafe(handle.cancel)

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
      registers one). At each beat the probe is asked *on the GUI thread*
      whether a guarded loop runs there; while it says no, or while the
      thread runs no event loop at all (``QThread.loopLevel() == 0``, read
      from the watchdog thread the way PySide6.QtAsyncio's ``is_running``
      does), the loop is not timed;
    * asyncio loops that Qt runs (qasync, PySide6.QtAsyncio), given as
      ``loop``: their ``call_soon_threadsafe``/``call_later`` go through
      PySide6 signal emissions or ``QTimer.singleShot``, which in PySide6
      6.12 on Python 3.11 drop one reference to ``None`` per call; at a
      heartbeat's rate that crashes the process within minutes
      (``none_dealloc``). A ``QTimer`` connected to a slot and a queued
      ``QMetaObject.invokeMethod`` of a named slot do not leak.
    """

    def __init__(
        self,
        thread_id: int,
        clock: Clock,
        interval: float,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(thread_id, "Qt event loop", clock, interval)
        # Only the loop's own thread (the GUI thread: Qt runs these loops
        # there) may resolve the Qt names; the watchdog thread uses them once
        # that thread has (see prepare_qt).
        qt = prepare_qt() if threading.get_ident() == thread_id else qt_names()
        if qt is None:
            raise RuntimeError("PySide6 is not imported, or not prepared on the GUI thread yet")
        QCoreApplication, QMetaObject, queued = qt  # noqa: N806 - Qt class names

        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("no QCoreApplication")
        # A weak reference: holding the application would keep it alive
        # after the host dropped it.
        self._app = weakref.ref(app)
        # Kept: an import statement costs ~100 us under PySide6's import hook.
        self._application = QCoreApplication
        self.qthread = app.thread()
        self.loop = loop
        if loop is not None:
            self.description = _describe(loop)
        self.mismatch = False  # the thread is not the application's thread
        self.unguarded = False  # the thread's probe says no guarded loop runs
        # Created on the calling thread, then handed to the GUI thread:
        # moveToThread must be called from the object's current thread.
        self.receiver = _receiver_class()(self)
        self.receiver.moveToThread(self.qthread)
        # Kept alive until its finish() ran on the GUI thread: see _live_receivers.
        _live_receivers.add(self.receiver)
        self._invoke = QMetaObject.invokeMethod
        self._queued = queued

    def _beat(self) -> None:
        # On the GUI thread.
        if self.stopped:
            return
        ident = threading.get_ident()
        if ident != self.thread_id:
            self.mismatch = True
            return
        if self.loop is None:
            probe = threads.thread_probes.get(ident)
            try:
                description = probe() if probe is not None else None
            except Exception:  # noqa: BLE001 - a broken probe must not break the host
                description = None
            self.unguarded = description is None
            if description is not None:
                self.description = description
        super()._beat()

    def start(self) -> bool:
        """Start the receiver's timer, from the GUI thread (queued call)."""
        if self.gone():
            return False
        self._invoke(self.receiver, "start", self._queued)
        return True

    def stop(self) -> None:
        """Stop the timer and delete the receiver, on the GUI thread."""
        super().stop()
        app = self._application.instance()
        if app is not None and app is self._app():
            self._invoke(self.receiver, "finish", self._queued)

    def running(self) -> bool:
        """True while the loop runs (and is guarded) on the application's thread."""
        if self.mismatch or self.unguarded:
            return False
        if self.loop is not None:
            return _asyncio_loop_running(self.loop, self.thread_id)
        return bool(self.qthread.loopLevel() > 0)

    def gone(self) -> bool:
        """True once the application, the loop or the thread's probe is gone."""
        app = self._application.instance()
        if self.mismatch or app is None or app is not self._app():
            return True
        if self.loop is not None:
            return self.loop.is_closed()
        return self.thread_id not in threads.thread_probes


_receiver_cls: Any = None

#: Heartbeat receivers whose finish() has not run yet on the GUI thread. A
#: heartbeat and its receiver refer to each other, and the watchdog thread is
#: the one that lets go of a stopped heartbeat; without this set, whichever
#: thread next runs the garbage collector would free the pair, and PySide6
#: would delete the receiver on that thread. Qt cannot stop a timer from
#: another thread ("QObject::~QObject: Timers cannot be stopped from another
#: thread"), so the receiver's timer stayed registered with the GUI thread and
#: fired on the freed object: a segfault in QTimerInfoList::activateTimers,
#: long after, in unrelated code.
_live_receivers: set[Any] = set()


_qt_names: tuple[Any, Any, Any] | None = None
_preparing = False


def prepare_qt() -> tuple[Any, Any, Any] | None:
    """Resolve the Qt names heartbeats need, once, on the calling thread.

    Call it only where touching PySide6 for the first time is safe: on the GUI
    thread, or right after ``PySide6.QtCore`` was imported (no Qt code can run
    yet anywhere), never from the watchdog thread. PySide6 creates its enums
    and types lazily, and creating one on a second thread while the GUI thread
    runs Qt races with it: ``AttributeError: type object 'PySide6.QtCore.Qt'
    has no attribute 'TimerType'`` in the application, or a segmentation
    fault (issue 12.1). Returns None while PySide6 is not imported.
    """
    global _qt_names, _preparing
    if _qt_names is None and not _preparing and "PySide6.QtCore" in sys.modules:
        # The imports below can run patched calls on the GUI thread, whose
        # probe would come back here: once is enough.
        _preparing = True
        try:
            from PySide6.QtCore import QCoreApplication, QMetaObject, Qt, QThread

            queued = Qt.ConnectionType.QueuedConnection
            Qt.TimerType.PreciseTimer  # noqa: B018 - created here, used by the receiver
            QThread.currentThread  # noqa: B018 - the type QCoreApplication.thread() returns
            _receiver_class()
            _qt_names = (QCoreApplication, QMetaObject, queued)
        finally:
            _preparing = False
    return _qt_names


def qt_names() -> tuple[Any, Any, Any] | None:
    """The names :func:`prepare_qt` resolved, or None; never touches PySide6 itself."""
    return _qt_names


def prepare_qt_if_gui_thread() -> None:
    """Prepare the Qt names if the calling thread is the main thread.

    Qt wants its application on the main thread, so that is the GUI thread
    unless the Qt integration found otherwise (it then prepares the names
    itself, on the application's thread: :func:`loopwarden.qt.gui_thread.sync`).
    """
    if _qt_names is None and threading.current_thread() is threading.main_thread():
        prepare_qt()


def _receiver_class() -> Any:
    # Defined on first use: PySide6 is an optional dependency.
    global _receiver_cls
    if _receiver_cls is None:
        from PySide6.QtCore import QObject, Qt, QTimer, Slot

        class HeartbeatReceiver(QObject):
            def __init__(self, heartbeat: QtHeartbeat) -> None:
                super().__init__()
                self._heartbeat: QtHeartbeat | None = heartbeat
                self._timer: QTimer | None = None

            @Slot()
            def start(self) -> None:
                heartbeat = self._heartbeat
                if heartbeat is None or heartbeat.stopped:
                    return
                timer = self._timer = QTimer(self)
                timer.setTimerType(Qt.TimerType.PreciseTimer)
                timer.setInterval(max(1, round(heartbeat.interval * 1000)))
                timer.timeout.connect(self.beat)
                timer.start()
                heartbeat._beat()

            @Slot()
            def beat(self) -> None:
                if self._heartbeat is not None:
                    self._heartbeat._beat()

            @Slot()
            def finish(self) -> None:
                # On the GUI thread: the timer stops here, where Qt allows it,
                # before anything can free this object elsewhere.
                if self._timer is not None:
                    self._timer.stop()
                self._heartbeat = None  # no cycle left for the garbage collector
                self.deleteLater()
                _live_receivers.discard(self)

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


def make_heartbeat(
    loop: asyncio.AbstractEventLoop, thread_id: int, clock: Clock, interval: float
) -> Heartbeat:
    """The right heartbeat for an asyncio loop: Qt-run loops get a Qt one."""
    if type(loop).__module__.partition(".")[0] in ("qasync", "PySide6"):
        try:
            return QtHeartbeat(thread_id, clock, interval, loop)
        except Exception:  # noqa: BLE001 - no application: fall back to asyncio's own way
            pass
    return AsyncioHeartbeat(loop, thread_id, clock, interval)


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
    """``sys._current_frames()``: the topmost frame of every other thread.

    Not the calling thread's: its frame refers back, through the caller's
    locals, to whatever holds this dict, a reference cycle that kept every
    frame in it, and each of their locals, alive until the next cyclic
    garbage collection (a widget a test deleted, a timer the test expected
    gone, firing into a deleted object in the next test).
    """
    frames = sys._current_frames()
    frames.pop(threading.get_ident(), None)
    return frames


def monotonic() -> float:
    """The default clock."""
    return time.monotonic()
