"""The Qt half of the ``thread`` family: GUI objects and QObjects used from the wrong thread.

Patching every method of every widget is neither possible nor useful. The
table patches representative *entry points*: the methods through which
worker-thread code typically touches the UI (show, update, resize, the text
and value setters of the common widgets, scene and item changes, clipboard
and cursor access). A patch on a base class covers the subclasses that
inherit the method (``QWidget.show`` covers every widget); a subclass that
redefines a method in C++ and exposes it again (``QDialog.setVisible``) is
covered only if it is listed. The full list is rendered into the rules
reference. Everything else a worker does to a widget is unseen, except what
Qt itself warns about (see :mod:`loopwarden.affinity.qt_messages`).

Three kinds of check, all on data below:

* **GUI only** (``gui_only``): the call must be made on the GUI thread.
  On the GUI thread it costs one ``threading.get_ident()`` comparison.
* **Object's thread** (``qobject_owned``): QObject methods Qt allows only
  from the object's own ``thread()``: timers, re-parenting, pulling an object
  with ``moveToThread``. A worker that owns its QObjects (created there or
  moved there) is silent.
* **singleShot** (``single_shot``): ``QTimer.singleShot`` from a thread that
  runs no Qt event loop, whose callback would never run.

Every rule has ``import_module=False``: PySide6 is never imported by us.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopwarden.affinity.checks import gui_only, qobject_owned, single_shot
from loopwarden.affinity.tables import method_rules
from loopwarden.rules import Rule

__all__ = ["RULES"]

GUI = (
    "Qt GUI objects may only be used on the GUI thread. From a worker, emit a signal "
    "connected to a slot of a GUI object (Qt queues it to the GUI thread), call "
    "`QMetaObject.invokeMethod(obj, 'slot', Qt.QueuedConnection)`, or "
    "`QTimer.singleShot(0, gui_object, fn)` with a context object that lives on the GUI thread."
)
PIXMAP = (
    "QPixmap belongs to the GUI thread. In a worker, draw into a QImage (safe in any thread), "
    "send it with a signal and convert it with QPixmap.fromImage() on the GUI thread."
)
OWN_THREAD = (
    "Qt allows this only from the object's own thread (obj.thread()). Do it there: emit a signal "
    "connected to a slot of the object, or `QMetaObject.invokeMethod(obj, 'start', "
    "Qt.QueuedConnection)`; create worker objects in the worker or move them with "
    "moveToThread() from the thread they live in."
)
SINGLE_SHOT = (
    "QTimer.singleShot() creates its timer in the calling thread, and no Qt event loop runs on "
    "this one: the callback never runs. Pass a context object that lives on the GUI thread, "
    "`QTimer.singleShot(0, gui_object, fn)`, or emit a signal / call "
    "`QMetaObject.invokeMethod(gui_object, ..., Qt.QueuedConnection)`."
)

_GUI_WHEN = "called from a thread other than the Qt GUI thread (while a QApplication exists)"
_OWN_WHEN = (
    "called from a thread other than the object's thread() (a worker using the QObjects it "
    "owns is fine)"
)
_SINGLE_SHOT_WHEN = (
    "called from a thread that runs no Qt event loop (a Python thread, an executor or a "
    "QThreadPool thread), unless the delay is 0 and a context object living on another "
    "thread is given"
)

_W = "PySide6.QtWidgets"
_G = "PySide6.QtGui"
_C = "PySide6.QtCore"

#: (module, class, methods) that must be called on the GUI thread.
GUI_ONLY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        _W,
        "QWidget",
        (
            "show",
            "hide",
            "setVisible",
            "close",
            "update",
            "repaint",
            "resize",
            "move",
            "setGeometry",
            "setEnabled",
            "setWindowTitle",
            "setStyleSheet",
            "setToolTip",
            "adjustSize",
            "setFocus",
            "setLayout",
            "raise_",
            "activateWindow",
        ),
    ),
    (_W, "QDialog", ("setVisible", "open", "accept", "reject", "done")),  # exec: family reentrancy
    (_W, "QLabel", ("setText", "setPixmap", "setNum", "clear")),
    (_W, "QLineEdit", ("setText", "clear")),
    (_W, "QAbstractButton", ("setText", "setChecked", "setIcon")),
    (_W, "QTextEdit", ("setText", "setPlainText", "setHtml", "append", "clear", "insertPlainText")),
    (_W, "QPlainTextEdit", ("setPlainText", "appendPlainText", "clear", "insertPlainText")),
    (_W, "QProgressBar", ("setValue", "setRange", "setMaximum", "reset")),
    (_W, "QAbstractSlider", ("setValue", "setRange")),
    (_W, "QSpinBox", ("setValue",)),
    (_W, "QComboBox", ("addItem", "addItems", "clear", "setCurrentIndex", "setCurrentText")),
    (_W, "QListWidget", ("addItem", "addItems", "clear")),
    (_W, "QTableWidget", ("setItem", "setRowCount", "clear")),
    (_W, "QStatusBar", ("showMessage", "clearMessage")),
    (_W, "QMainWindow", ("setCentralWidget",)),
    (
        _W,
        "QGraphicsScene",
        (
            "addItem",
            "removeItem",
            "clear",
            "addText",
            "addRect",
            "addEllipse",
            "addLine",
            "addPixmap",
            "update",
            "setSceneRect",
        ),
    ),
    (_W, "QGraphicsView", ("setScene", "centerOn", "fitInView")),
    (
        _W,
        "QGraphicsItem",
        ("setPos", "setVisible", "update", "setZValue", "setRotation", "setScale"),
    ),
    (_G, "QClipboard", ("setText", "text", "setPixmap", "setImage", "setMimeData", "clear")),
    (_G, "QCursor", ("setPos",)),
    (_G, "QGuiApplication", ("setOverrideCursor", "restoreOverrideCursor")),
)

#: GUI-only methods whose advice is the QImage hand-over.
PIXMAP_ONLY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (_G, "QPixmap", ("fill", "load", "scaled", "convertFromImage")),
)

#: (module, class, methods) that Qt allows only from the object's own thread.
OWN_THREAD_ONLY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (_C, "QTimer", ("start", "stop", "setInterval")),
    (_C, "QObject", ("setParent", "moveToThread", "startTimer", "killTimer", "installEventFilter")),
    (_G, "QTextDocument", ("setHtml", "setPlainText", "setTextWidth", "clear")),
)


def _table(
    entries: tuple[tuple[str, str, tuple[str, ...]], ...],
    suggestion: str,
    condition: str,
    wrap: Callable[[Rule, Any], Any],
) -> list[Rule]:
    return [
        rule
        for module, cls, methods in entries
        for rule in method_rules(
            module,
            cls,
            methods,
            prefix=cls,
            suggestion=suggestion,
            condition=condition,
            import_module=False,
            wrap=wrap,
        )
    ]


#: The Qt rules of the ``thread`` family.
RULES: tuple[Rule, ...] = (
    *_table(GUI_ONLY, GUI, _GUI_WHEN, gui_only),
    *_table(PIXMAP_ONLY, PIXMAP, _GUI_WHEN, gui_only),
    *_table(OWN_THREAD_ONLY, OWN_THREAD, _OWN_WHEN, qobject_owned),
    Rule(
        target=f"{_C}:QTimer.singleShot",
        name="QTimer.singleShot",
        family="thread",
        suggestion=SINGLE_SHOT,
        condition=_SINGLE_SHOT_WHEN,
        import_module=False,
        wrap=single_shot,
    ),
)
