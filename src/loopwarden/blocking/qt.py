"""Families ``qt`` and ``reentrancy``: Qt's blocking APIs and nested event loops.

Every rule has ``import_module=False``: PySide6 is patched only when the
application has imported it already (or imports it while a warden is active,
see :mod:`loopwarden.qt.gui_thread`). Nothing here imports PySide6; the
predicates duck-type the Qt objects they are given.

Shiboken notes: methods are patched on the class with ``setattr`` (static
ones stay static). A few names have both a static and an instance overload
(``QFile.copy``, ``QFile.remove``, ``QMenu.exec``); Shiboken binds their
instance calls straight from its C method table, so the registry also wraps
those classes' ``__getattribute__`` (see ``Registry._hook_instance_access``).
Predicates of such rules see ``(obj, *args)`` for an instance call and only
``args`` for a static call; they tell the forms apart by the first argument.
"""

from __future__ import annotations

import asyncio
import os
import sys
from types import CodeType
from typing import Any

import loopwarden.qt  # noqa: F401 - hooks the GUI-thread guard into warden activation
from loopwarden.rules import NOT_BLOCKED, Attempt, BlocksWhen, Rule

__all__ = ["RULES"]

_QTCORE = "PySide6.QtCore"
_QTNETWORK = "PySide6.QtNetwork"
_QTWIDGETS = "PySide6.QtWidgets"
_QTGUI = "PySide6.QtGui"
_QTTEST = "PySide6.QtTest"
_QTSERIAL = "PySide6.QtSerialPort"

# -- suggestions -------------------------------------------------------------

_WAIT_FOR = (
    "Qt's waitFor*() functions block the event loop until the I/O happens. Connect to the "
    "signal instead (started, finished, readyRead, bytesWritten, connected, disconnected, "
    "newConnection) or, in a coroutine, await it (e.g. with a Future set from the slot)."
)
_PROCESS = (
    "QProcess.execute() runs a program to the end on this thread. Use a QProcess with "
    "start() and its finished signal, or `await asyncio.create_subprocess_exec(...)`."
)
_THREAD_WAIT = (
    "QThread.wait() blocks until the worker ends. Connect to the thread's finished signal "
    "instead, or `await asyncio.to_thread(thread.wait)` when you must join."
)
_SLEEP = (
    "Sleeping on the GUI thread freezes the UI. Use QTimer.singleShot(ms, callback) or, in a "
    "coroutine, `await asyncio.sleep(seconds)`."
)
_FILE = (
    "File I/O through Qt waits on the disk on the GUI thread. Move it to a QThread or a "
    "QThreadPool task (QRunnable), or `await asyncio.to_thread(...)` under qasync."
)
_SETTINGS = (
    "QSettings.sync() writes the settings file. Let Qt sync on its own (it does when the "
    "QSettings object is destroyed and periodically), or sync from a worker thread."
)
_LOCK = (
    "This lock is held by another thread: waiting for it blocks the GUI thread. Keep lock "
    "scopes tiny on workers, use tryLock() with a QTimer retry, or hand results over with "
    "queued signals instead of shared state."
)
_CONDITION = (
    "QWaitCondition.wait() sleeps until another thread wakes it. Let the worker emit a "
    "queued signal instead of waking a waiting GUI thread."
)
_POOL = (
    "QThreadPool.waitForDone() blocks until every task finishes. Have tasks report back "
    "with signals, or `await asyncio.to_thread(pool.waitForDone)`."
)
_DNS = (
    "QHostInfo.fromName() resolves the name on this thread. Use QHostInfo.lookupHost(name, "
    "receiver) or `await loop.getaddrinfo(...)`."
)
_NESTED = (
    "This starts a nested event loop inside a running asyncio task or callback: other tasks "
    "and callbacks re-enter the loop and asyncio breaks ('Cannot enter into task ...'). "
    "Show dialogs with `dialog.open()` and react to the finished/accepted signals (or await "
    "a Future set from them), or run the modal call with `await qasync.asyncWrap(lambda: "
    "dialog.exec())`; wait with `await asyncio.sleep(...)` instead of processEvents/qWait."
)

# -- predicates: "would this call block?" ---------------------------------------


def _waits(args: tuple[Any, ...], kwargs: dict[str, Any], position: int = 1) -> bool:
    """False when the timeout argument is zero (a poll); true when it waits."""
    if len(args) > position:
        value = args[position]
    elif kwargs:
        value = next(iter(kwargs.values()))
    else:
        return True  # the default timeout waits
    remaining = getattr(value, "remainingTime", None)  # a QDeadlineTimer
    if callable(remaining):
        return bool(remaining() != 0)
    try:
        return bool(value != 0)
    except Exception:  # noqa: BLE001 - an odd timeout value: assume it waits
        return True


def _state_name(device: Any) -> str:
    return str(device.state().name)


def _process_starting(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs) and _state_name(args[0]) == "Starting"


def _process_running(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs) and _state_name(args[0]) != "NotRunning"


def _bytes_to_write(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs) and args[0].bytesToWrite() > 0


def _socket_connecting(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs) and _state_name(args[0]) in ("HostLookupState", "ConnectingState")


def _socket_open(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs) and _state_name(args[0]) != "UnconnectedState"


def _server_listening(*args: Any, **kwargs: Any) -> bool:
    # waitForNewConnection(msec=0) polls by default.
    return len(args) > 1 and _waits(args, kwargs) and bool(args[0].isListening())


def _timeout_not_zero(*args: Any, **kwargs: Any) -> bool:
    # QSerialPort.waitForReadyRead sleeps out its timeout even on a closed port.
    return _waits(args, kwargs)


def _thread_running(*args: Any, **kwargs: Any) -> bool:
    # Waiting for a thread that has finished (or never started) returns at once.
    return _waits(args, kwargs) and bool(args[0].isRunning())


def _pool_busy(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs) and args[0].activeThreadCount() > 0


def _condition_waits(*args: Any, **kwargs: Any) -> bool:
    return _waits(args, kwargs, position=2)


def _positive(*args: Any, **_: Any) -> bool:
    # Static sleeps: QThread.msleep(0) and QTest.qSleep(0) return at once.
    try:
        return bool(args[0] > 0)
    except Exception:  # noqa: BLE001 - an odd timeout value: assume it waits
        return True


def _on_file(device: Any, *_: Any, **__: Any) -> bool:
    """True for an open QFile/QSaveFile on a real file (not the console, a TTY or a resource)."""
    qtcore = sys.modules.get(_QTCORE)
    if qtcore is None or not isinstance(device, qtcore.QFileDevice) or not device.isOpen():
        return False
    fd = device.handle()
    if fd < 0:
        return False  # Qt resources (":/...") live in memory
    return fd > 2 and not os.isatty(fd)


def _opens_path(device: Any, *args: Any, **__: Any) -> bool:
    # QFile.open(mode) opens fileName(); open(fd, mode, ...) wraps a descriptor.
    name = str(device.fileName())
    return len(args) <= 1 and bool(name) and not name.startswith(":")


# -- attempts: take the lock without blocking when it is free -------------------


def _try(method: str) -> Attempt:
    def attempt(original: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if getattr(args[0], method)(*args[1:], **kwargs):
            return None  # taken without waiting, exactly what the blocking call returns
        return NOT_BLOCKED

    attempt.__name__ = f"try_{method}"
    return attempt


# -- re-entrancy -----------------------------------------------------------------

_callback_codes: set[CodeType] = {asyncio.events.Handle._run.__code__}


def _callback_code_set() -> set[CodeType]:
    # QtAsyncio runs callbacks through its own handle class; pick it up once imported.
    qtasyncio = sys.modules.get("PySide6.QtAsyncio.events")
    if qtasyncio is not None:
        cb = getattr(getattr(qtasyncio, "QAsyncioHandle", None), "_cb", None)
        code = getattr(cb, "__code__", None)
        if isinstance(code, CodeType):
            _callback_codes.add(code)
    return _callback_codes


def _inside_asyncio_callback(*_: Any, **__: Any) -> bool:
    """True inside a running asyncio task, or a callback the loop is running."""
    try:
        if asyncio.current_task() is not None:
            return True
    except RuntimeError:
        return False  # no asyncio loop at all: plain Qt may nest loops freely
    codes = _callback_code_set()
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# -- the tables --------------------------------------------------------------------

#: (target, blocks_when, condition, suggestion); family "qt".
_BLOCKING: tuple[tuple[str, BlocksWhen | None, str, str], ...] = (
    (f"{_QTCORE}:QThread.wait", _thread_running, "the thread runs; timeout not 0", _THREAD_WAIT),
    (f"{_QTCORE}:QThread.sleep", _positive, "seconds > 0", _SLEEP),
    (f"{_QTCORE}:QThread.msleep", _positive, "msecs > 0", _SLEEP),
    (f"{_QTCORE}:QThread.usleep", _positive, "usecs > 0", _SLEEP),
    (f"{_QTCORE}:QProcess.waitForStarted", _process_starting, "starting; timeout not 0", _WAIT_FOR),
    (f"{_QTCORE}:QProcess.waitForFinished", _process_running, "running; timeout not 0", _WAIT_FOR),
    (f"{_QTCORE}:QProcess.waitForReadyRead", _process_running, "running; timeout not 0", _WAIT_FOR),
    (f"{_QTCORE}:QProcess.waitForBytesWritten", _bytes_to_write, "data pending", _WAIT_FOR),
    (f"{_QTCORE}:QProcess.execute", None, "always", _PROCESS),
    # QIODevice's own waitFor* return at once; every Qt device that really
    # waits overrides them in its own class, so the overrides are the targets.
    *(
        (f"{_QTNETWORK}:{cls}.{method}", predicate, condition, _WAIT_FOR)
        for cls in ("QAbstractSocket", "QSslSocket", "QLocalSocket")
        for method, predicate, condition in (
            ("waitForConnected", _socket_connecting, "connecting; timeout not 0"),
            ("waitForReadyRead", _socket_open, "not unconnected; timeout not 0"),
            ("waitForBytesWritten", _bytes_to_write, "data pending; timeout not 0"),
            ("waitForDisconnected", _socket_open, "not unconnected; timeout not 0"),
        )
    ),
    (f"{_QTNETWORK}:QSslSocket.waitForEncrypted", _socket_open, "not unconnected", _WAIT_FOR),
    (f"{_QTSERIAL}:QSerialPort.waitForReadyRead", _timeout_not_zero, "timeout not 0", _WAIT_FOR),
    (f"{_QTSERIAL}:QSerialPort.waitForBytesWritten", _bytes_to_write, "data pending", _WAIT_FOR),
    *(
        (f"{_QTNETWORK}:{cls}.waitForNewConnection", _server_listening, "timeout not 0", _WAIT_FOR)
        for cls in ("QTcpServer", "QLocalServer")
    ),
    (f"{_QTNETWORK}:QHostInfo.fromName", None, "always", _DNS),
    *(
        (f"{_QTCORE}:QIODevice.{method}", _on_file, "the device is an open real file", _FILE)
        for method in ("read", "readAll", "readLine", "peek", "getChar", "write", "putChar")
    ),
    (f"{_QTCORE}:QFileDevice.flush", _on_file, "the device is an open real file", _FILE),
    (f"{_QTCORE}:QFile.open", _opens_path, "opening fileName() (not an fd)", _FILE),
    *(
        (f"{_QTCORE}:QFile.{method}", None, "static form", _FILE)
        for method in ("copy", "rename", "remove", "link", "moveToTrash", "exists")
    ),
    (f"{_QTCORE}:QSaveFile.commit", None, "always", _FILE),
    *(
        (f"{_QTCORE}:QDir.{method}", None, "always", _FILE)
        for method in ("entryList", "entryInfoList", "exists", "mkdir", "mkpath", "rmdir")
    ),
    (f"{_QTCORE}:QDir.removeRecursively", None, "always", _FILE),
    (f"{_QTCORE}:QSettings.sync", None, "always", _SETTINGS),
    (f"{_QTCORE}:QWaitCondition.wait", _condition_waits, "timeout not 0", _CONDITION),
    (f"{_QTCORE}:QThreadPool.waitForDone", _pool_busy, "tasks running; timeout not 0", _POOL),
    (f"{_QTCORE}:QSystemSemaphore.acquire", None, "always", _LOCK),
    (f"{_QTTEST}:QTest.qSleep", _positive, "msecs > 0", _SLEEP),
)

#: (target, non-blocking method tried first); family "qt", a finding only when contended.
_LOCKS: tuple[tuple[str, str], ...] = (
    (f"{_QTCORE}:QMutex.lock", "tryLock"),
    (f"{_QTCORE}:QRecursiveMutex.lock", "tryLock"),
    (f"{_QTCORE}:QSemaphore.acquire", "tryAcquire"),
    (f"{_QTCORE}:QReadWriteLock.lockForRead", "tryLockForRead"),
    (f"{_QTCORE}:QReadWriteLock.lockForWrite", "tryLockForWrite"),
)

#: Calls that run a nested event loop; family "reentrancy".
_NESTED_LOOPS: tuple[str, ...] = (
    f"{_QTCORE}:QEventLoop.exec",
    f"{_QTCORE}:QEventLoop.exec_",
    f"{_QTCORE}:QCoreApplication.processEvents",
    f"{_QTWIDGETS}:QDialog.exec",
    f"{_QTWIDGETS}:QDialog.exec_",
    f"{_QTWIDGETS}:QMenu.exec",
    *(
        f"{_QTWIDGETS}:QMessageBox.{name}"
        for name in ("information", "warning", "critical", "question", "about", "aboutQt")
    ),
    *(
        f"{_QTWIDGETS}:QFileDialog.{name}"
        for name in (
            "getOpenFileName",
            "getOpenFileNames",
            "getSaveFileName",
            "getExistingDirectory",
            "getOpenFileUrl",
            "getOpenFileUrls",
            "getSaveFileUrl",
            "getExistingDirectoryUrl",
        )
    ),
    *(
        f"{_QTWIDGETS}:QInputDialog.{name}"
        for name in ("getText", "getMultiLineText", "getInt", "getDouble", "getItem")
    ),
    f"{_QTWIDGETS}:QColorDialog.getColor",
    f"{_QTWIDGETS}:QFontDialog.getFont",
    f"{_QTGUI}:QDrag.exec",
    f"{_QTTEST}:QTest.qWait",
)

#: Library code that may block on these primitives by design, per target.
_ALLOWED_IN: dict[str, frozenset[str]] = {
    # QtAsyncio joins the helper thread that shut its executor down (asyncio
    # itself does this join in a worker thread).
    f"{_QTCORE}:QThread.wait": frozenset(
        {"PySide6.QtAsyncio.events:QAsyncioEventLoop.shutdown_default_executor"}
    ),
}

RULES: tuple[Rule, ...] = (
    *(
        Rule(
            target=target,
            family="qt",
            suggestion=suggestion,
            blocks_when=predicate,
            condition=condition,
            import_module=False,
            allowed_in=_ALLOWED_IN.get(target, frozenset()),
        )
        for target, predicate, condition, suggestion in _BLOCKING
    ),
    *(
        Rule(
            target=target,
            family="qt",
            suggestion=_LOCK,
            attempt=_try(method),
            condition=f"contended ({method}() fails)",
            import_module=False,
        )
        for target, method in _LOCKS
    ),
    *(
        Rule(
            target=target,
            family="reentrancy",
            suggestion=_NESTED,
            blocks_when=_inside_asyncio_callback,
            condition="started on the loop thread inside a running asyncio task or callback",
            check_nested=True,
            import_module=False,
        )
        for target in _NESTED_LOOPS
    ),
)
