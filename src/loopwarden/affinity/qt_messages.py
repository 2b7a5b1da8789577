"""Qt's own thread warnings become ``thread`` findings, with the Python stack that caused them.

Qt checks some thread rules itself and says so with ``qWarning``
("QObject::startTimer: Timers cannot be started from another thread"), a
line on stderr that is easy to miss and carries no Python stack. While a
warden is active, a Qt message handler (``QtCore.qInstallMessageHandler``)
turns the lines listed in :data:`MESSAGES` into findings. Qt calls the
handler on the thread that caused the warning, inside the Qt call, so the
Python stack at that moment is the culprit's.

Rules of the road:

* Installed only on the GUI thread, only once the application imported
  ``PySide6.QtCore`` itself (a post-import hook waits for it; importing
  PySide6 for the first time off the GUI thread can crash), and only while
  a warden is active.
* It chains: every message is passed on to the handler that was installed
  before (pytest-qt's capture, the application's), or printed the way Qt's
  default handler does when there was none.
* It is restored exactly: on the last deactivation the previous handler is
  put back if ours is still the current one. If another handler was
  installed over ours meanwhile (pytest-qt installs one per test), that one
  stays current and ours stays below it, passing messages on; when that
  handler later restores ours, the next activation reuses it instead of
  stacking a new one.
* A message handler cannot raise into Qt's C++ code: in ``"raise"`` mode the
  finding is recorded and logged (the pytest plugin fails the test for it),
  in ``"warn"`` mode a warning is issued, attributed to the user's line.
* A wrong-thread call that a patch already reported (``QTimer.start`` from a
  worker) is not reported again for the warning Qt prints about it.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from loopwarden import engine
from loopwarden import warden as _warden
from loopwarden.affinity import checks
from loopwarden.errors import BlockingCallWarning
from loopwarden.qt.imports import PostImportHook
from loopwarden.rules import Rule
from loopwarden.threads import main_ident

__all__ = ["MESSAGES", "QtThreadMessage", "sync"]

logger = logging.getLogger("loopwarden")

_QTCORE = "PySide6.QtCore"

_CHILD = (
    "A QObject's parent must live in the same thread. Create the child on the parent's thread "
    "(ask it with a queued signal or `QMetaObject.invokeMethod(parent, ..., "
    "Qt.QueuedConnection)`), or create it without a parent and moveToThread() it."
)
_TIMER = (
    "A timer belongs to the thread of its QObject. Start and stop it there: emit a signal "
    "connected to timer.start/stop, or `QMetaObject.invokeMethod(timer, 'start', "
    "Qt.QueuedConnection)`."
)
_NOTIFIER = (
    "A QSocketNotifier is watched by the event dispatcher of the thread it was created in: "
    "enable, disable and delete it on that thread (a queued signal, or "
    "`QMetaObject.invokeMethod(notifier, 'setEnabled', Qt.QueuedConnection, Q_ARG(bool, "
    "False))`). Under qasync, notifiers belong to the loop: close a loop on the thread that "
    "ran it."
)
_NO_LOOP = (
    "Timers need a Qt event loop in their thread, and this thread has none. Use "
    "`QTimer.singleShot(0, gui_object, fn)` with a context object on the GUI thread, or run "
    "the timer in a QThread that runs exec() (a worker object moved with moveToThread)."
)
_MOVE = (
    "moveToThread() can only push an object away from the thread it lives in, not pull it "
    "from another thread. Call it on the object's own thread, or create the object in the "
    "thread that should own it."
)
_EVENTS = (
    "Events sent with sendEvent() are delivered at once, so the receiver must live in the "
    "calling thread. Use QCoreApplication.postEvent(), a queued signal or "
    "`QMetaObject.invokeMethod(obj, ..., Qt.QueuedConnection)`."
)
_GUI = (
    "Qt GUI objects may only be used on the GUI thread. From a worker, emit a signal "
    "connected to a slot of a GUI object, or call `QMetaObject.invokeMethod(obj, 'slot', "
    "Qt.QueuedConnection)`."
)
_PIXMAP = (
    "QPixmap belongs to the GUI thread. In a worker, draw into a QImage (safe in any thread), "
    "send it with a signal and convert it with QPixmap.fromImage() on the GUI thread."
)


class QtThreadMessage(NamedTuple):
    """One Qt warning that is a ``thread`` finding.

    Attributes:
        text: Text the message contains (Qt adds addresses around it).
        name: The finding's primitive: the Qt call that warned.
        suggestion: What to do instead.
    """

    text: str
    name: str
    suggestion: str


#: The Qt thread warnings that become findings, in the order they are matched.
MESSAGES: tuple[QtThreadMessage, ...] = (
    QtThreadMessage(
        "Cannot create children for a parent that is in a different thread",
        "QObject.__init__",
        _CHILD,
    ),
    QtThreadMessage(
        "Cannot set parent, new parent is in a different thread", "QObject.setParent", _CHILD
    ),
    QtThreadMessage("Timers cannot be started from another thread", "QObject.startTimer", _TIMER),
    QtThreadMessage("Timers cannot be stopped from another thread", "QObject.killTimer", _TIMER),
    QtThreadMessage(
        "Timers can only be used with threads started with QThread", "QObject.startTimer", _NO_LOOP
    ),
    # Only timers: a QSocketNotifier in such a thread (a QSerialPort read with
    # waitForReadyRead() in a worker) prints the same text, and that blocking
    # use in a worker is the recommended pattern.
    QtThreadMessage(
        "startTimer: current thread's event dispatcher has already been destroyed",
        "QObject.startTimer",
        _NO_LOOP,
    ),
    QtThreadMessage("is not the object's thread", "QObject.moveToThread", _MOVE),
    QtThreadMessage(
        "Cannot send events to objects owned by a different thread",
        "QCoreApplication.sendEvent",
        _EVENTS,
    ),
    QtThreadMessage(
        "Socket notifiers cannot be enabled or disabled from another thread",
        "QSocketNotifier.setEnabled",
        _NOTIFIER,
    ),
    QtThreadMessage(
        "Cannot filter events for objects in a different thread",
        "QObject.installEventFilter",
        _CHILD,
    ),
    QtThreadMessage("Widgets must be created in the GUI thread", "QWidget.__init__", _GUI),
    QtThreadMessage("It is not safe to use pixmaps outside the GUI thread", "QPixmap", _PIXMAP),
)

_RULES: dict[str, Rule] = {}


def _rule_for(message: QtThreadMessage) -> Rule:
    # Rule objects only for allowances and reporting; they are never patched.
    rule = _RULES.get(message.text)
    if rule is None:
        rule = _RULES[message.text] = Rule(
            target=f"{_QTCORE}:qInstallMessageHandler",
            family="thread",
            suggestion=message.suggestion,
            condition=f"Qt warns {message.text!r}",
            name=message.name,
            import_module=False,
        )
    return rule


def match(text: str) -> QtThreadMessage | None:
    """The entry of :data:`MESSAGES` that ``text`` (a Qt message) is, or None."""
    return next((m for m in MESSAGES if m.text in text), None)


_tls = threading.local()


class _Handler:
    """Our message handler; ``previous`` is the one it passes messages on to."""

    # A class default, not an __init__: one is made at every activation (each
    # per-test switch), and a Python __init__ is a frame more.
    previous: Any = None

    def __call__(self, msg_type: Any, context: Any, message: str) -> None:
        if getattr(_tls, "handling", False):
            return  # a chain that leads back to us: the outer call passes it on
        _tls.handling = True
        try:
            try:
                if engine.active_wardens:
                    _consider(str(message), sys._getframe(1))
            except Exception:  # Qt's message path must never fail
                logger.debug("loopwarden: could not judge a Qt message", exc_info=True)
            _pass_on(self.previous, msg_type, context, message)
        finally:
            _tls.handling = False


def _pass_on(previous: Any, msg_type: Any, context: Any, message: str) -> None:
    try:
        if previous is not None:
            previous(msg_type, context, message)
            return
        qtcore = sys.modules.get(_QTCORE)
        text = qtcore.qFormatLogMessage(msg_type, context, message) if qtcore else message
        sys.stderr.write(f"{text}\n")
    except Exception:  # a broken handler below us is not our failure
        logger.debug("loopwarden: the previous Qt message handler failed", exc_info=True)


def _consider(text: str, caller: Any) -> None:
    """Report ``text`` if it is a thread warning caused by Python code."""
    if checks.inside_reported_call() or getattr(engine._tls, "busy", False):
        return
    entry = match(text)
    if entry is None or caller is None:
        return
    rule = _rule_for(entry)
    owner = checks.Owner(checks.UNKNOWN, f"Qt: {text.splitlines()[0]}")
    finding, user_frame = checks.build_finding(rule, owner, caller, {"qt_message": text})
    if finding is None:
        return
    mode = engine.record(finding)
    if mode == "raise":
        logger.error("loopwarden: %s", finding.format())
    elif mode == "warn" and user_frame is not None:
        warnings.warn_explicit(
            BlockingCallWarning(finding.message),
            BlockingCallWarning,
            user_frame.f_code.co_filename,
            user_frame.f_lineno,
            module=user_frame.f_globals.get("__name__"),
        )


class _State:
    current: _Handler | None = None  # the handler installed by the last activation


_state = _State()


def _install(qtcore: Any) -> None:
    candidate = _Handler()
    old = qtcore.qInstallMessageHandler(candidate)
    if isinstance(old, _Handler):
        # Ours was on top already (maybe one that another handler restored).
        qtcore.qInstallMessageHandler(old)
        _state.current = old
        return
    candidate.previous = old
    _state.current = candidate


def _uninstall(qtcore: Any) -> None:
    ours = _state.current
    if ours is None:
        return
    _state.current = None
    top = qtcore.qInstallMessageHandler(ours.previous)
    if top is not ours:
        # Someone installed a handler over ours: keep theirs current. Ours
        # stays below it and keeps passing messages on.
        qtcore.qInstallMessageHandler(top)


def _on_import(name: str) -> None:
    if name == _QTCORE:
        sync()


_import_hook = PostImportHook(_QTCORE, _on_import)


def sync() -> None:
    """Install the handler while a warden is active, restore the previous one after.

    Runs as a warden state hook (on the thread that activates or deactivates);
    installs only on the GUI thread and only once PySide6.QtCore is imported.
    """
    # Twice per per-test switch: the common answers inline, as in
    # loopwarden.qt.gui_thread.sync.
    qtcore = sys.modules.get(_QTCORE)
    if not engine.active_wardens:
        if not _warden.patches_held():  # kept while keep_installed() holds
            _import_hook.uninstall()
        if qtcore is not None and _state.current is not None:
            _uninstall(qtcore)
        return
    if qtcore is None:
        _import_hook.install()
        return
    _import_hook.uninstall()
    here = threading.get_ident()
    if here != main_ident[0] and here != _gui_thread():
        return
    _install(qtcore)


# loopwarden.qt.gui_thread.gui_thread_id, imported at the first call and not with
# this module (loopwarden.qt.gui_thread loads the watchdog package); once, not per
# call: PySide6 replaces builtins.__import__ with a Python function, and sync()
# runs at every per-test switch (an import statement cost ~2 µs of its ~9).
_gui_thread_id: Callable[[], int] | None = None


def _gui_thread() -> int:
    global _gui_thread_id
    if _gui_thread_id is None:
        from loopwarden.qt.gui_thread import gui_thread_id

        _gui_thread_id = gui_thread_id
    return _gui_thread_id()
