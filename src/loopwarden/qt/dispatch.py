"""Mark Qt event handling that runs outside any event loop (tests driving the GUI).

A pytest-qt test drives widgets directly: ``qtbot.mouseClick(button, ...)``,
``button.click()``, ``action.trigger()``, ``obj.some_signal.emit()``. Qt runs
the slots and event handlers *inside* those calls, synchronously on the GUI
thread, while no event loop runs (``loopLevel() == 0``). In the real
application the same handlers run inside the event loop, where blocking
freezes the window, so they are checked here too.

Each entry point in :data:`ENTRY_POINTS` is wrapped (:class:`loopwarden.wraps.Wrap`):
on the GUI thread, while a warden is active, the wrapper pushes the entry
point's name on :data:`state.entries <_DispatchState.entries>` for the
duration of the call, and the GUI-thread probe
(:func:`loopwarden.qt.gui_thread.describe_qt_loop`) treats the thread as
guarded while that list is not empty. The entry-point call itself is made by
the test and is not checked: only what Qt runs inside it is.

Cost: on any other thread (and on the GUI thread while no warden is active)
the wrapper compares one thread id and calls the original. Threads without a
probe never consult the list at all.

What is not marked: ``QCoreApplication.notify`` (virtual: see
:data:`ENTRY_POINTS`), other API that happens to run handlers synchronously
(``show()``/``close()`` running showEvent/closeEvent, setters emitting
``valueChanged``), and a bare ``processEvents()`` from the test body, which
stays unguarded by design (see the Qt guide).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import BuiltinFunctionType, MethodDescriptorType, MethodType
from typing import Any

from loopwarden import native
from loopwarden.wraps import Wrap

__all__ = ["ENTRY_POINTS", "WRAPS", "state"]

_QTCORE = "PySide6.QtCore"
_QTGUI = "PySide6.QtGui"
_QTWIDGETS = "PySide6.QtWidgets"
_QTTEST = "PySide6.QtTest"


class _DispatchState:
    """Where event handling is being marked (one instance, module-wide)."""

    __slots__ = ("entries", "gui_thread")

    def __init__(self) -> None:
        #: Thread id of the GUI thread while a warden is active, else None.
        self.gui_thread: int | None = None
        #: Names of the entry points running on the GUI thread, outermost first.
        self.entries: list[str] = []


state = _DispatchState()

#: Calls through which Qt runs slots and event handlers synchronously.
ENTRY_POINTS: tuple[str, ...] = (
    # Synthetic input (qtbot's mouse/key helpers call these at call time).
    *(
        f"{_QTTEST}:QTest.{name}"
        for name in (
            "mouseClick",
            "mouseDClick",
            "mouseMove",
            "mousePress",
            "mouseRelease",
            "mouseEvent",
            "wheelEvent",
            "keyClick",
            "keyClicks",
            "keyEvent",
            "keyPress",
            "keyRelease",
            "keySequence",
            "sendKeyEvent",
            "simulateEvent",
            # These process events while they wait (no event loop level).
            "qWait",
            "qWaitForWindowExposed",
            "qWaitForWindowActive",
            "qWaitForWindowFocused",
        )
    ),
    f"{_QTWIDGETS}:QAbstractButton.click",
    f"{_QTWIDGETS}:QAbstractButton.animateClick",
    f"{_QTGUI}:QAction.trigger",
    f"{_QTGUI}:QAction.activate",
    f"{_QTCORE}:SignalInstance.emit",
    f"{_QTCORE}:QCoreApplication.sendEvent",
    # Not ``notify``: it is virtual, and with a Python attribute on the class
    # Shiboken treats it as a Python override and routes every event that C++
    # delivers through it (slow, and it misdispatched in PySide6 6.11).
    f"{_QTCORE}:QMetaObject.invokeMethod",
)


def _mark(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The replacement of one entry point: mark the call on the GUI thread.

    Where the C extension was built and the entry point is a C method or
    function (every one here), the C ``MarkMethod`` does the same with no
    Python frame for direct calls (``SignalInstance.emit`` runs for every
    signal of an app); a bound method of it is one of the Python mark.
    """
    python_mark = _python_mark(name, original)
    speedups = native.speedups
    if speedups is not None and isinstance(original, (MethodDescriptorType, BuiltinFunctionType)):
        try:
            marked: Callable[..., Any] = speedups.MarkMethod(
                original, name, state, state.entries, python_mark
            )
        except Exception:  # noqa: BLE001 - an incompatible extension: the Python mark
            return python_mark
        for attribute in ("__name__", "__qualname__", "__wrapped__", "__module__"):
            setattr(marked, attribute, getattr(python_mark, attribute))
        return marked
    return python_mark


def _python_mark(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    marks = state
    entries = marks.entries
    get_ident = threading.get_ident

    def _qt_dispatch(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # pytest: the caller's line, also for the original's own errors
        if get_ident() != marks.gui_thread:
            return original(*args, **kwargs)
        entries.append(name)
        try:
            return original(*args, **kwargs)
        finally:
            entries.pop()

    _qt_dispatch.__name__ = getattr(original, "__name__", _qt_dispatch.__name__)
    _qt_dispatch.__qualname__ = getattr(original, "__qualname__", _qt_dispatch.__qualname__)
    _qt_dispatch.__wrapped__ = original  # type: ignore[attr-defined]
    _qt_dispatch.__loopwarden_mark_of__ = original  # type: ignore[attr-defined]
    return _qt_dispatch


def _for_qt(value: object) -> object:
    """``value``, or what PySide6 can take in its place if it is a bound patched method.

    PySide6 takes the function of a bound method for a Python function and
    reads its code; the lock and file/socket C wrappers bind to themselves
    (``with lock:`` and ``print()`` look their methods up bound, and must stay
    in C), so a slot ``file.write`` is handed over as a bound method of the C
    wrapper's Python wrapper, which decides each call as the C path does: the
    same method, which PySide6 can read (connecting the C one crashed the
    interpreter). And ``a.connect(b.emit)`` chains two signals: PySide6
    recognises the bound ``emit`` of a signal and connects signal to signal in
    C++, where a bound method of our dispatch mark would be a Python callable it
    must hold weakly, which a ``SignalInstance`` does not allow (connect()
    raised ``SystemError``): the entry point's own bound method is passed on.
    """
    if type(value) is not MethodType:
        return value
    function = value.__func__
    receiver = value.__self__
    original = getattr(function, "__loopwarden_mark_of__", None)
    if original is not None:
        return original.__get__(receiver, type(receiver))
    if type(function).__module__ == "loopwarden._speedups":
        python_wrapper = getattr(function, "python_wrapper", None)
        if python_wrapper is not None:
            return MethodType(python_wrapper, receiver)
    return value


def _connecting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """PySide6 calls that take a slot: each bound patched method as :func:`_for_qt` says."""

    def _qt_connect(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # pytest: the caller's line, also for the original's own errors
        args = tuple(_for_qt(arg) for arg in args)
        if kwargs:
            kwargs = {key: _for_qt(value) for key, value in kwargs.items()}
        return original(*args, **kwargs)

    _qt_connect.__name__ = getattr(original, "__name__", _qt_connect.__name__)
    _qt_connect.__qualname__ = getattr(original, "__qualname__", _qt_connect.__qualname__)
    _qt_connect.__wrapped__ = original  # type: ignore[attr-defined]
    return _qt_connect


#: PySide6 calls that take a Python callable as a slot and read a bound method's
#: function (see _for_qt). QTimer.singleShot with a delay and a signal given as a
#: constructor keyword connect in C++, past these: the C wrappers carry their Python
#: wrapper's ``__code__`` for those (loopwarden.c_wrappers.give_code).
SLOT_TAKERS: tuple[str, ...] = (
    f"{_QTCORE}:SignalInstance.connect",
    f"{_QTCORE}:SignalInstance.disconnect",
    f"{_QTCORE}:QObject.connect",
    f"{_QTCORE}:QObject.disconnect",
)


WRAPS: tuple[Wrap, ...] = (
    *(Wrap(target, _mark) for target in ENTRY_POINTS),
    *(Wrap(target, _connecting) for target in SLOT_TAKERS),
)


def describe_dispatch(skip: int = 0) -> str | None:
    """Describe the event handling marked on this thread, or None (GUI thread only).

    Args:
        skip: How many outermost marked calls do not count (a forked child's
            inherited ones).
    """
    entries = state.entries
    if len(entries) > skip:
        return f"Qt event handling run by {entries[skip]}() on the GUI thread"
    return None
