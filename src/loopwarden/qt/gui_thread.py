"""Guard the Qt GUI thread while a Qt event loop runs on it.

Plain Qt code (no asyncio) sets no running asyncio loop, so the core's test
("does an asyncio loop run in this thread?") never fires in a slot of
``app.exec()``, ``QEventLoop.exec()`` or a modal dialog. This module registers
a thread probe (:func:`loopwarden.threads.add_thread_probe`) for the GUI
thread that answers "a Qt event loop runs here" when
``QThread.currentThread().loopLevel() > 0``. Qt raises the loop level in
every ``exec()``, its internal nested loops included, and leaves it at 0 in a
slot run from a bare ``processEvents()`` and in a pytest-qt test body.

Wiring, without any call beyond ``guard()``:

* :func:`sync` runs as a warden state hook (:data:`loopwarden.warden.state_hooks`):
  on activation it registers the probe for the GUI thread, on the last
  deactivation it removes it. Only the GUI thread gets a probe, so worker
  QThreads, QThreadPool threads and executors keep the core's fast path.
* The GUI thread is the thread of the ``QCoreApplication`` when one exists and
  we run on it, else the main thread (Qt requires a GUI application there).
* PySide6 imported *after* activation: a post-import hook
  (:class:`loopwarden.qt.imports.PostImportHook`) notices each PySide6
  module as it is imported, patches its Qt rules through
  :meth:`loopwarden.registry.Registry.refresh` and, once ``PySide6.QtCore``
  is there, registers the probe. Until then no probe is registered, so
  patched calls on the main thread keep the core's fast path.
* The probe only asks Qt for the loop level: a QApplication created after
  activation is picked up by that same question.
* Outside any event loop, the probe also answers "yes" while Qt runs event
  handlers inside a call marked by :mod:`loopwarden.qt.dispatch`
  (``qtbot.mouseClick``, ``button.click()``, ``signal.emit()``...).
* A forked child (``multiprocessing`` with the fork start method, a
  ``ProcessPoolExecutor`` worker) inherits the loop level and the marked
  calls of the thread that forked, not its event loop: the child runs its own
  code on that thread. Only the loops and marked calls it enters itself count
  (:func:`_after_fork_in_child`), as asyncio's running-loop lookup ignores a
  loop set in the parent process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from loopwarden import engine
from loopwarden import warden as _warden
from loopwarden.qt import dispatch
from loopwarden.qt.features import warn_feature_modules
from loopwarden.qt.imports import PostImportHook
from loopwarden.threads import main_ident, thread_probes

# The one import of a detector from the shared Qt plumbing: the watchdog's Qt
# heartbeat needs its PySide6 names resolved on the GUI thread, and the probe
# below is the code that runs there (see docs/architecture.md).
from loopwarden.watchdog import heartbeats as _heartbeats

__all__ = ["describe_qt_loop", "gui_thread_id", "sync"]

logger = logging.getLogger("loopwarden")

_QTCORE = "PySide6.QtCore"


class _State:
    """What the integration remembers (one instance, module-wide)."""

    def __init__(self) -> None:
        self.thread_id: int | None = None  # where our probe is registered
        self.current_thread: Callable[[], Any] | None = None  # QThread.currentThread
        self.pyside_installed: bool | None = None
        self.rule_modules: frozenset[str] | None = None
        self.rule_modules_imported = False  # every module of rule_modules seen imported
        # sys.modules' (size, last name) when rule_modules was last compared with
        # it, the import hook installed after; None: compare at the next activation.
        self.modules_compared: tuple[int, str | None] | None = None
        # In a forked child: (loop level, marked calls) inherited from the
        # parent at fork, which are not the child's own; None elsewhere.
        self.inherited: tuple[int, int] | None = None


_state = _State()


def _qt_rule_modules() -> frozenset[str]:
    if _state.rule_modules is None:
        from loopwarden.families import default_rules, default_wraps

        names = [r.module_name for r in default_rules()]
        names.extend(w.module_name for w in default_wraps())
        _state.rule_modules = frozenset(n for n in names if n.startswith("PySide6"))
    return _state.rule_modules


def _pyside_installed() -> bool:
    if _state.pyside_installed is None:
        try:
            _state.pyside_installed = importlib.util.find_spec("PySide6") is not None
        except (ImportError, ValueError):
            _state.pyside_installed = False
    return _state.pyside_installed


def gui_thread_id() -> int:
    """The Python thread id of the Qt GUI thread.

    The thread of the ``QCoreApplication`` when one exists and the caller runs
    on it; otherwise the main thread, where Qt wants its application created.
    """
    ident = threading.get_ident()
    main = main_ident[0]
    if ident == main or main is None:
        # Either answer below is this thread then: no Qt call (three Shiboken
        # calls, ~1.5 µs, paid twice at every per-test switch of pytest's main thread).
        return ident
    qtcore = sys.modules.get(_QTCORE)
    if qtcore is not None:
        app = qtcore.QCoreApplication.instance()
        # Not cached: a weak reference to the application (a Shiboken wrapper)
        # crashed the interpreter's last garbage collection at exit on 3.10,
        # the wrapper being freed without its weak references cleared.
        if app is not None and app.thread() is qtcore.QThread.currentThread():
            return ident
    return main


def describe_qt_loop() -> str | None:
    """The thread probe: describe the Qt event loop running here, or None."""
    current_thread = _state.current_thread
    if current_thread is None:
        return None
    if _heartbeats._qt_names is None:
        # Probes run on their own thread, the GUI thread: the one place the
        # watchdog's Qt names may be resolved late (a warden activated on
        # another thread after PySide6 was imported).
        _heartbeats.prepare_qt()
    level = current_thread().loopLevel()
    if _state.inherited is not None:
        return _describe_in_forked_child(level, _state.inherited)
    if level > 0:
        return f"Qt event loop (QThread.loopLevel() == {level}) on the GUI thread"
    return dispatch.describe_dispatch()


def _describe_in_forked_child(level: int, inherited: tuple[int, int]) -> str | None:
    """The probe's answer in a forked child: only what the child entered itself."""
    inherited_level, inherited_marks = inherited
    marks = len(dispatch.state.entries)
    if level < inherited_level or marks < inherited_marks:
        # The child left what it inherited: whatever it enters next is its own.
        inherited_level, inherited_marks = min(level, inherited_level), min(marks, inherited_marks)
        _state.inherited = (inherited_level, inherited_marks)
    if level > inherited_level:
        return f"Qt event loop (QThread.loopLevel() == {level}) on the GUI thread"
    return dispatch.describe_dispatch(skip=inherited_marks)


def _after_fork_in_child() -> None:
    """Forget the GUI thread's loops that the forked child only inherited.

    fork() copies one thread, the one that forked, and in the child it runs the
    child's code (multiprocessing's bootstrap and the target), never the
    parent's event loop, even though the copied memory says a Qt loop runs.
    Runs in the child right after fork; must never raise.
    """
    state = _state
    state.inherited = None
    if state.thread_id is None or state.current_thread is None:
        return  # no probe registered: nothing inherited to forget
    try:
        if threading.get_ident() != state.thread_id:
            # Forked on another thread: the GUI thread does not exist in the child.
            _remove_probe(keep=None)
            return
        state.inherited = (state.current_thread().loopLevel(), len(dispatch.state.entries))
    except Exception:  # noqa: BLE001 - a fork hook must not break the child
        _remove_probe(keep=None)


if hasattr(os, "register_at_fork"):  # POSIX; registered once per process
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_pyside_import(name: str) -> None:
    """A PySide6 module was imported while a warden is active."""
    if name in _qt_rule_modules():
        from loopwarden.registry import registry

        registry.refresh()
    if name == _QTCORE:
        # Right after QtCore's import no Qt code runs anywhere yet: the safe
        # moment to create what the watchdog's Qt heartbeat needs, so the
        # watchdog thread never touches PySide6 first (issue 12.1).
        _heartbeats.prepare_qt()
        sync()


_import_hook = PostImportHook("PySide6.", _on_pyside_import)


def _remove_probe(keep: int | None) -> None:
    """Remove our probe unless it is registered for ``keep`` (never someone else's)."""
    state = _state
    if state.thread_id is not None and state.thread_id != keep:
        if thread_probes.get(state.thread_id) is describe_qt_loop:
            thread_probes.pop(state.thread_id, None)  # remove_thread_probe(), inline
        state.thread_id = None
        dispatch.state.gui_thread = None


def sync() -> None:
    """Register the GUI-thread probe while a warden is active, remove it after.

    Runs as a warden state hook; safe to call at any time.
    """
    # Runs twice at every per-test switch of the pytest plugin: the common
    # answers are read inline (no call for the PySide6 test, the GUI thread's
    # id on the main thread, the probe's registration), each call saved being
    # ~0.1 µs of a switch.
    state = _state
    pyside_installed = state.pyside_installed
    if pyside_installed is None:
        pyside_installed = _pyside_installed()
    if not engine.active_wardens or not pyside_installed:
        if not pyside_installed or not _warden.patches_held():
            # (Kept while keep_installed() holds: no meta_path edit per test.)
            _import_hook.uninstall()
            state.modules_compared = None  # the next activation installs the hook again
        if state.thread_id is not None:
            _remove_probe(keep=None)
        return
    qtcore = sys.modules.get(_QTCORE)
    if qtcore is None:
        # No probe yet: it would send every main-thread call down the slow path.
        _import_hook.install()
        return
    warn_feature_modules()
    if not state.rule_modules_imported:
        # Compared again only once a module was imported since: an app rarely
        # imports every Qt module with rules (QtNetwork, QtSql, QtTest...), and
        # the set test and the meta_path scan cost ~0.4 µs of every switch.
        modules = sys.modules
        imported = (len(modules), next(reversed(modules), None))
        if imported != state.modules_compared:
            if _qt_rule_modules() <= modules.keys():
                # For good: with every one imported, the hook's refresh would have
                # no rule left to resolve (refresh() retries only unresolved rules).
                state.rule_modules_imported = True
                _import_hook.uninstall()
            else:
                _import_hook.install()  # Qt modules with rules may still be imported
            state.modules_compared = imported  # after: an interrupted one is redone
    state.current_thread = qtcore.QThread.currentThread
    here = threading.get_ident()
    # gui_thread_id() inline for the main thread, where it answers without Qt.
    ident = here if here == main_ident[0] else gui_thread_id()
    if ident == here and _heartbeats._qt_names is None:
        _heartbeats.prepare_qt()  # on the GUI thread: safe, and the watchdog may need it
    if state.thread_id not in (None, ident):
        _remove_probe(keep=ident)
    state.thread_id = ident  # first: a Ctrl-C right after the next line must not lose it
    thread_probes[ident] = describe_qt_loop  # add_thread_probe(), inline
    dispatch.state.gui_thread = ident
