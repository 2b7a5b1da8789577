"""The hot path of the thread-affinity detector: wrappers that ask "right thread?".

A blocking-call wrapper asks "does a loop run on *this* thread?"; these ask
"does the object belong to *this* thread?". The common case, a call made on
the owner's own thread, costs one identity comparison in the wrapper:

* asyncio objects: ``running_loop() is owner_loop`` (one C call);
* Qt GUI objects: ``get_ident() == gui_thread`` (one C call);
* other QObjects: ``obj.thread() is QThread.currentThread()`` (two C calls,
  only on the QObject methods Qt itself restricts: timers, parents).

Everything else here runs only in the thread that made a call from elsewhere
(a worker): find the owner, honour allowances, build the finding, hand it to
:func:`loopwarden.engine.report` (which raises, warns or records like any
finding). In ``"raise"`` mode the wrong-thread call is *not* made.

While a reported call runs (``"warn"``/``"record"`` mode), a thread-local
flag keeps the calls it makes itself (``Event.set`` resolving a waiter
future, ``Future.set_result`` scheduling its callbacks) and the Qt warning it
causes from being reported again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from loopwarden import engine, native
from loopwarden import frames as _frames
from loopwarden.allowances import allowed_here
from loopwarden.c_wrappers import c_wrappable, like_python_wrapper
from loopwarden.findings import Finding
from loopwarden.rules import Rule
from loopwarden.threads import describe_loop, running_loop

__all__ = [
    "UNKNOWN",
    "Owner",
    "asyncio_owned",
    "build_finding",
    "gui_only",
    "inside_reported_call",
    "qobject_owned",
    "report_wrong_thread",
    "single_shot",
]

_get_ident = threading.get_ident
_tls = threading.local()

#: The owner's thread id is not known (a running loop that keeps no thread id).
UNKNOWN = 0


class Owner:
    """Who a touched object belongs to, found on the slow path only.

    Attributes:
        thread_id: ``threading.get_ident()`` of the owner thread, or
            :data:`UNKNOWN`.
        what: Text for :attr:`Finding.loop`, e.g. ``"asyncio loop ..."``.
    """

    __slots__ = ("thread_id", "what")

    def __init__(self, thread_id: int, what: str) -> None:
        self.thread_id = thread_id
        self.what = what


def inside_reported_call() -> bool:
    """True while a wrong-thread call already reported on this thread runs."""
    return bool(getattr(_tls, "inside", False))


def _thread_name(ident: int) -> str | None:
    if ident == UNKNOWN:
        return None
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread {ident}"


def _allowed_by_scope(rule: Rule) -> bool:
    allowed = allowed_here.get()
    return bool(allowed) and ("*" in allowed or rule.name in allowed or rule.family in allowed)


def _skip() -> bool:
    """No warden, or loopwarden itself is at work on this thread."""
    return (
        not engine.active_wardens
        or getattr(_tls, "inside", False)
        or getattr(engine._tls, "busy", False)  # the engine is inspecting a call here
    )


def build_finding(
    rule: Rule, owner: Owner, caller: FrameType | None, extra: dict[str, Any] | None = None
) -> tuple[Finding | None, FrameType | None]:
    """The finding for a wrong-thread call made from ``caller``, unless an allowance covers it.

    Returns ``(finding, user_frame)``; ``(None, None)`` when the call is
    excused (an ``allow_blocking("thread")`` scope, a user allowance, a tool's
    own frame) or the check itself failed (logged, never raised).
    """
    if caller is None or _allowed_by_scope(rule):
        return None, None
    engine._tls.busy = True  # our own work (thread list, frames) is never a finding
    try:
        excused, nearest_own = engine._excused(rule, caller)
        if excused:
            return None, None
        # Like blocking findings: the place to fix is the user's own code; a
        # library frame that made the call is named beside it.
        library_frame = nearest_own or caller
        user_frame = _frames.nearest_own_frame(library_frame) or library_frame
        finding = _make_finding(rule, owner, caller, user_frame, library_frame, extra or {})
        return finding, user_frame
    except Exception:  # noqa: BLE001 - a broken check must never break the host
        engine.logger.exception("loopwarden: the thread check of %s failed", rule.name)
        return None, None
    finally:
        engine._tls.busy = False


def report_wrong_thread(
    rule: Rule, owner: Owner, caller: FrameType | None, extra: dict[str, Any] | None = None
) -> bool:
    """Build and report the finding for a call from the wrong thread.

    Returns True when a finding was reported (the caller then runs the call
    with :func:`inside_reported_call` true), False when an allowance excused it.

    Raises:
        BlockingCallError: in ``"raise"`` mode (the finding is recorded first).
    """
    __tracebackhide__ = True
    finding, user_frame = build_finding(rule, owner, caller, extra)
    if finding is None:
        return False
    engine.report(finding, user_frame)
    return True


def _make_finding(
    rule: Rule,
    owner: Owner,
    caller: FrameType,
    user_frame: FrameType,
    library_frame: FrameType,
    extra: dict[str, Any],
) -> Finding:
    stack = _frames.capture_stack(caller)
    thread = threading.current_thread()
    details: dict[str, Any] = {
        "owner_thread": _thread_name(owner.thread_id),
        "owner_thread_id": owner.thread_id or None,
        **extra,
    }
    return Finding(
        primitive=rule.name,
        family=rule.family,
        thread_name=thread.name,
        thread_id=thread.ident or _get_ident(),
        loop=owner.what,
        caller=str(stack[-1]) if stack else "<unknown>",
        user_caller=_frames.frame_label(user_frame),
        stack=stack,
        suggestion=rule.suggestion,
        timestamp=time.time(),
        details=details,
        library_caller=(
            _frames.frame_label(library_frame) if library_frame is not user_frame else ""
        ),
    )


def _run_reported(original: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
    _tls.inside = True
    try:
        return original(*args, **kwargs)
    finally:
        _tls.inside = False


def _finish(rule: Rule, wrapper: Callable[..., Any], original: Any) -> Callable[..., Any]:
    wrapper.__name__ = getattr(original, "__name__", wrapper.__name__)
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__qualname__)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__loopwarden_rule__ = rule  # type: ignore[attr-defined]
    return wrapper


# -- asyncio ------------------------------------------------------------------


def _is_qt_loop(loop: object) -> bool:
    module = type(loop).__module__
    return module.startswith(("qasync", "PySide6"))


def loop_owner(loop: object) -> Owner | None:
    """The owner of ``loop`` when it runs on another thread than this one, else None.

    A loop that is not running (being set up before ``run_forever``, or
    stopped) belongs to no thread: calls on it are fine from anywhere.
    """
    if not isinstance(loop, asyncio.AbstractEventLoop):
        return None
    here = _get_ident()
    owner = getattr(loop, "_thread_id", None)  # BaseEventLoop, while run_forever runs
    if owner is None:
        # qasync, QtAsyncio and uvloop keep no thread id: ask whether it runs.
        try:
            if not loop.is_running():
                return None
        except Exception:  # noqa: BLE001 - a loop in an odd state: say nothing
            return None
        owner = UNKNOWN
        if _is_qt_loop(loop):
            from loopwarden.qt.gui_thread import gui_thread_id

            owner = gui_thread_id()
    if owner == here:
        return None
    return Owner(owner, describe_loop(loop))


def asyncio_owned(*, bound: bool) -> Callable[[Rule, Any], Any]:
    """Wrapper factory for methods of asyncio loops and loop-bound objects.

    ``bound=False``: methods of the loop itself. ``bound=True``: futures,
    transports, queues, events and locks, whose loop is ``self._loop`` (None
    until an asyncio primitive is first awaited: then any thread may use it).
    """

    def wrap(rule: Rule, original: Any) -> Callable[..., Any]:
        running = running_loop
        slow = _foreign_asyncio_call
        trim = _frames.trim_source_traceback  # (C LoopMethod, where built: no frame of ours)
        if bound:

            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True  # first: also for the original's own errors
                loop = self._loop
                if loop is None or running() is loop:
                    return trim(original(self, *args, **kwargs))
                return slow(rule, original, loop, self, args, kwargs)

        else:

            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True  # first: also for the original's own errors
                if running() is self:
                    return trim(original(self, *args, **kwargs))
                return slow(rule, original, self, self, args, kwargs)

        _finish(rule, wrapper, original)
        return _c_loop_method(rule, original, wrapper, bound=bound) or wrapper

    return wrap


def _c_loop_method(
    rule: Rule, original: Any, python_wrapper: Callable[..., Any], *, bound: bool
) -> Callable[..., Any] | None:
    """The C ``LoopMethod`` over ``python_wrapper``, or None (pure Python, or not for it)."""
    speedups = native.speedups
    if speedups is None or not c_wrappable(original):
        return None
    try:
        made = speedups.LoopMethod(original, python_wrapper, running_loop, bound)
    except Exception:  # noqa: BLE001 - an incompatible extension: the Python wrapper
        return None
    return like_python_wrapper(made, python_wrapper, original)


def _foreign_asyncio_call(
    rule: Rule,
    original: Callable[..., Any],
    loop: object,
    obj: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    __tracebackhide__ = True
    # (A task made before its loop runs: its place of creation is the caller's.)
    if loop is None or _skip():
        return _frames.trim_source_traceback(original(obj, *args, **kwargs))
    owner = loop_owner(loop)
    if owner is None or not report_wrong_thread(rule, owner, _frames.current_frame(2)):
        return _frames.trim_source_traceback(original(obj, *args, **kwargs))
    return _frames.trim_source_traceback(_run_reported(original, (obj, *args), kwargs))


# -- Qt -----------------------------------------------------------------------


class _Gui:
    """The GUI thread id the Qt wrappers compare with (refreshed on the slow path)."""

    ident: int = threading.main_thread().ident or 0


_gui = _Gui()

_GUI_THREAD_TEXT = "the Qt GUI thread"


def _gui_thread_now() -> int:
    from loopwarden.qt.gui_thread import gui_thread_id

    ident = gui_thread_id()
    _gui.ident = ident
    return ident


def _free_on_gui_thread(
    rule: Rule,
    original: Any,
    slow: Callable[[Rule, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any],
) -> Callable[..., Any]:
    """A wrapper that calls ``original`` straight on the GUI thread, and ``slow`` elsewhere.

    On the GUI thread (the common case) the call costs one thread-identity
    comparison; ``slow`` decides everywhere else.
    """
    gui = _gui
    get_ident = _get_ident

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # first: also for the original's own errors
        if get_ident() == gui.ident:
            return original(*args, **kwargs)
        return slow(rule, original, args, kwargs)

    return _finish(rule, wrapper, original)


def gui_only(rule: Rule, original: Any) -> Callable[..., Any]:
    """Wrapper for GUI classes: every call must be made on the GUI thread.

    Takes ``*args`` so it serves instance and static methods alike.
    """
    return _free_on_gui_thread(rule, original, _off_gui_call)


def _off_gui_call(
    rule: Rule, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    __tracebackhide__ = True
    if _skip() or sys.modules.get("PySide6.QtCore") is None:
        return original(*args, **kwargs)
    qtcore = sys.modules["PySide6.QtCore"]
    if qtcore.QCoreApplication.instance() is None:
        return original(*args, **kwargs)  # no application yet: no GUI thread to race with
    gui = _gui_thread_now()
    if gui == _get_ident():
        return original(*args, **kwargs)
    owner = Owner(gui, _GUI_THREAD_TEXT)
    if not report_wrong_thread(rule, owner, _frames.current_frame(2)):
        return original(*args, **kwargs)
    return _run_reported(original, args, kwargs)


def _qthread_owner(qthread: Any) -> Owner:
    """Describe a QThread as an owner (its Python thread id when it is the GUI thread)."""
    qtcore = sys.modules.get("PySide6.QtCore")
    app = qtcore.QCoreApplication.instance() if qtcore is not None else None
    if app is not None and app.thread() is qthread:
        return Owner(_gui_thread_now(), _GUI_THREAD_TEXT)
    name = qthread.objectName() if qthread is not None else ""
    text = f"QThread {name!r}" if name else "a QThread"
    return Owner(UNKNOWN, f"the object's thread(), {text}")


#: (module, qualname) of QObject classes an event loop uses for its own scheduling:
#: qasync's ``_SimpleTimer`` runs every ``call_soon``/``call_later`` as a Qt timer.
#: Its ``startTimer`` runs inside that ``call_later``, whose thread the loop-method
#: check has judged already (a worker's ``call_soon`` is reported there, once), and its
#: ``killTimer`` inside its own ``timerEvent``, which Qt delivers on the object's
#: thread. Checking them again costs two Shiboken calls on every loop turn.
_LOOP_OWN_QOBJECTS = frozenset({("qasync", "_SimpleTimer")})
_CLASS_VERDICTS_BOUND = 256


def _is_loop_own_qobject(cls: type) -> bool:
    return (getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)) in (
        _LOOP_OWN_QOBJECTS
    )


def qobject_owned(rule: Rule, original: Any) -> Callable[..., Any]:
    """Wrapper for QObject methods Qt allows only from the object's own thread."""
    current: list[Callable[[], Any]] = []
    slow = _foreign_qobject_call
    # type(obj) -> whether it is an event loop's own QObject (a few classes at most).
    loop_own: dict[type, bool] = {}

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # first: also for the original's own errors
        cls = type(self)
        own = loop_own.get(cls)
        if own is None:
            if len(loop_own) >= _CLASS_VERDICTS_BOUND:
                loop_own.clear()  # classes made on the fly must not pile up
            own = loop_own[cls] = _is_loop_own_qobject(cls)
        if own:
            return original(self, *args, **kwargs)
        if not current:
            current.append(sys.modules["PySide6.QtCore"].QThread.currentThread)
        thread = self.thread()
        if thread is None or thread is current[0]():
            return original(self, *args, **kwargs)
        return slow(rule, original, self, thread, args, kwargs)

    finished = _finish(rule, wrapper, original)
    # In C, the calls on an event loop's own QObjects (qasync's timer: two per
    # loop turn) pass with no Python frame; the wrapper fills in the verdicts.
    speedups = native.speedups
    if speedups is None or not c_wrappable(original):
        return finished
    try:
        made = speedups.OwnerMethod(original, finished, loop_own)
    except Exception:  # noqa: BLE001 - an incompatible extension: the Python wrapper
        return finished
    return like_python_wrapper(made, finished, original)


def _foreign_qobject_call(
    rule: Rule,
    original: Callable[..., Any],
    obj: Any,
    thread: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    __tracebackhide__ = True
    if _skip():
        return original(obj, *args, **kwargs)
    owner = _qthread_owner(thread)
    extra = {"object": type(obj).__name__}
    if not report_wrong_thread(rule, owner, _frames.current_frame(2), extra):
        return original(obj, *args, **kwargs)
    return _run_reported(original, (obj, *args), kwargs)


def _no_qt_event_loop_here(qtcore: Any) -> bool:
    """True on a thread where no Qt event loop runs and none will.

    A thread started with ``threading.Thread`` (an asyncio executor too) has
    no Qt event dispatcher until a ``QEventLoop`` is created in it: without
    one, no timer of the thread can ever fire. (With one, a loop may run after
    the call: PySide6.QtAsyncio's executor schedules its work this way.) A
    QThreadPool thread has a dispatcher but never runs a loop. A QThread may
    still call ``exec()`` after scheduling a timer in ``run()``: not judged.
    """
    qthread = qtcore.QThread.currentThread()
    if qthread.loopLevel() > 0:
        return False
    if isinstance(threading.current_thread(), threading._DummyThread):
        return bool(qthread.objectName() == "Thread (pooled)")
    return qthread.eventDispatcher() is None


def _context_elsewhere(qtcore: Any, args: tuple[Any, ...]) -> bool:
    """``singleShot(0, context, fn)`` with a context object living in another thread."""
    if not args or args[0] != 0:
        return False
    context = next((a for a in args[1:] if isinstance(a, qtcore.QObject)), None)
    return context is not None and context.thread() is not qtcore.QThread.currentThread()


def single_shot(rule: Rule, original: Any) -> Callable[..., Any]:
    """Wrapper for ``QTimer.singleShot``: its timer lives in the calling thread.

    From a thread without a Qt event loop the callback never runs, unless the
    delay is 0 and a context object on a thread with an event loop is given
    (Qt then posts the call to that object's thread).
    """
    return _free_on_gui_thread(rule, original, _single_shot_elsewhere)


def _single_shot_elsewhere(
    rule: Rule, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    __tracebackhide__ = True
    qtcore = sys.modules.get("PySide6.QtCore")
    if _skip() or qtcore is None:
        return original(*args, **kwargs)
    try:
        if not _no_qt_event_loop_here(qtcore) or _context_elsewhere(qtcore, args):
            return original(*args, **kwargs)
    except Exception:  # noqa: BLE001 - odd arguments: let Qt judge them
        return original(*args, **kwargs)
    owner = Owner(UNKNOWN, "no Qt event loop runs on the calling thread")
    extra = {"owner_thread": None}
    if not report_wrong_thread(rule, owner, _frames.current_frame(2), extra):
        return original(*args, **kwargs)
    return _run_reported(original, args, kwargs)
