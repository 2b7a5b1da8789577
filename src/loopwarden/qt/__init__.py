"""Qt integration: the GUI-thread guard.

Importing this package (the ``qt`` rule family does) hooks
:func:`loopwarden.qt.gui_thread.sync` into warden activation, so the Qt GUI
thread is guarded whenever a warden is active and a Qt event loop runs on it.
It does not import PySide6: nothing Qt-specific happens unless the application
uses PySide6 itself. The Qt rules live in :mod:`loopwarden.blocking.qt`.
"""

from __future__ import annotations

from loopwarden import warden as _warden
from loopwarden.qt.gui_thread import describe_qt_loop, gui_thread_id, sync

__all__ = ["describe_qt_loop", "gui_thread_id", "sync"]

if sync not in _warden.state_hooks:
    _warden.state_hooks.append(sync)
