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
* PySide6 imported, or the ``QCoreApplication`` created, *after* activation:
  the probe itself notices new modules (one ``len(sys.modules)`` comparison
  per call) and patches the Qt rules of newly imported PySide6 modules through
  :meth:`loopwarden.registry.Registry.refresh`. Until PySide6 is imported the
  probe costs one dict lookup per patched call on the main thread, and only
  while a warden is active and no asyncio loop runs there.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from loopwarden import engine
from loopwarden.threads import add_thread_probe, remove_thread_probe, thread_probes

__all__ = ["describe_qt_loop", "gui_thread_id", "sync"]

logger = logging.getLogger("loopwarden")

_QTCORE = "PySide6.QtCore"


class _State:
    """What the probe remembers between calls (one instance, module-wide)."""

    def __init__(self) -> None:
        self.thread_id: int | None = None  # where our probe is registered
        self.modules_seen = -1  # len(sys.modules) at the last look
        self.current_thread: Callable[[], Any] | None = None  # QThread.currentThread
        self.pending_modules: frozenset[str] = frozenset()  # Qt rule modules not seen yet
        self.refreshing = False
        self.pyside_installed: bool | None = None


_state = _State()


def _qt_rule_modules() -> frozenset[str]:
    from loopwarden.families import default_rules

    return frozenset(r.module_name for r in default_rules() if r.module_name.startswith("PySide6"))


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
    qtcore = sys.modules.get(_QTCORE)
    if qtcore is not None:
        app = qtcore.QCoreApplication.instance()
        if app is not None and app.thread() is qtcore.QThread.currentThread():
            return threading.get_ident()
    main = threading.main_thread().ident
    return main if main is not None else threading.get_ident()


def describe_qt_loop() -> str | None:
    """The thread probe: describe the Qt event loop running here, or None."""
    state = _state
    if len(sys.modules) != state.modules_seen:
        _notice_imports()
    current_thread = state.current_thread
    if current_thread is None:
        return None  # PySide6 not imported: no Qt loop can run
    level = current_thread().loopLevel()
    if level > 0:
        return f"Qt event loop (QThread.loopLevel() == {level}) on the GUI thread"
    return None


def _notice_imports() -> None:
    """Look at newly imported modules: PySide6 itself, and Qt modules to patch."""
    state = _state
    if state.refreshing:
        return  # a refresh imports modules, which calls the probe again
    state.modules_seen = len(sys.modules)
    qtcore = sys.modules.get(_QTCORE)
    if qtcore is None:
        return
    if state.current_thread is None:
        state.current_thread = qtcore.QThread.currentThread
    arrived = {name for name in state.pending_modules if name in sys.modules}
    if not arrived:
        return
    state.pending_modules = state.pending_modules - arrived
    state.refreshing = True
    try:
        from loopwarden.registry import registry

        registry.refresh()
    except Exception:
        logger.exception("loopwarden: could not patch newly imported Qt modules")
    finally:
        state.refreshing = False
        state.modules_seen = len(sys.modules)


def _remove_probe(keep: int | None) -> None:
    """Remove our probe unless it is registered for ``keep`` (never someone else's)."""
    state = _state
    if state.thread_id is not None and state.thread_id != keep:
        if thread_probes.get(state.thread_id) is describe_qt_loop:
            remove_thread_probe(state.thread_id)
        state.thread_id = None


def sync() -> None:
    """Register the GUI-thread probe while a warden is active, remove it after.

    Runs as a warden state hook; safe to call at any time.
    """
    state = _state
    if not engine.active_wardens or not _pyside_installed():
        _remove_probe(keep=None)
        return
    # Rules were (re)installed by this activation: only modules imported from
    # now on need a refresh.
    state.pending_modules = frozenset(
        name for name in _qt_rule_modules() if name not in sys.modules
    )
    state.modules_seen = -1  # look again at the next probe call
    ident = gui_thread_id()
    if (
        state.thread_id not in (None, ident)
        and thread_probes.get(state.thread_id) is describe_qt_loop
    ):
        remove_thread_probe(state.thread_id)
    add_thread_probe(ident, describe_qt_loop)
    state.thread_id = ident
