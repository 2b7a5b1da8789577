"""Event handlers run by the test itself (no event loop): each marked entry point
guards what Qt runs inside it, and nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QMetaObject,
    QObject,
    Qt,
    QThread,
    QTimer,
    Signal,
    SignalInstance,
    Slot,
)
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLineEdit, QPushButton
from qt_support import in_worker, primitives

import loopwarden
from loopwarden import native
from loopwarden.qt import dispatch

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("qapp")]


class Target(QObject):
    """A QObject whose slot and event handler block."""

    ping = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.ping.connect(self.on_ping)
        self.runs = 0

    @Slot()
    def on_ping(self) -> None:
        self.runs += 1
        time.sleep(0.001)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.User:
            self.on_ping()
            return True
        return super().event(event)


class Edit(QLineEdit):
    def keyPressEvent(self, event: Any) -> None:
        time.sleep(0.001)
        super().keyPressEvent(event)


def _button(target: Target) -> QPushButton:
    button = QPushButton("go")
    button.clicked.connect(target.on_ping)
    return button


def _action(target: Target) -> QAction:
    action = QAction("go")
    action.triggered.connect(target.on_ping)
    return action


def _click_with_mouse(target: Target) -> Callable[[], Any]:
    button = _button(target)
    return lambda: QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def _click(target: Target) -> Callable[[], Any]:
    button = _button(target)
    return lambda: button.click()


def _animate_click(target: Target) -> Callable[[], Any]:
    button = QPushButton("go")
    button.pressed.connect(target.on_ping)  # emitted inside animateClick(); clicked comes later
    return lambda: button.animateClick()


def _trigger(target: Target) -> Callable[[], Any]:
    action = _action(target)
    return lambda: action.trigger()


#: entry point -> builds a call that drives the target through it.
_DRIVERS: dict[str, Callable[[Target], Callable[[], Any]]] = {
    "QTest.mouseClick": _click_with_mouse,
    "QAbstractButton.click": _click,
    "QAbstractButton.animateClick": _animate_click,
    "QAction.trigger": _trigger,
    "SignalInstance.emit": lambda t: lambda: t.ping.emit(),
    "QCoreApplication.sendEvent": lambda t: (
        lambda: QCoreApplication.sendEvent(t, QEvent(QEvent.Type.User))
    ),
    "QMetaObject.invokeMethod": lambda t: (
        lambda: QMetaObject.invokeMethod(t, "on_ping", Qt.ConnectionType.DirectConnection)
    ),
    "QTest.qWait": lambda t: lambda: (QTimer.singleShot(0, t.on_ping), QTest.qWait(50)),
}


@pytest.mark.parametrize("entry", sorted(_DRIVERS))
def test_handlers_run_inside_an_entry_point_are_checked(entry: str) -> None:
    target = Target()
    drive = _DRIVERS[entry](target)
    with loopwarden.guard(mode="record") as warden:
        drive()
    assert target.runs == 1
    assert primitives(warden) == ["time.sleep"]
    finding = warden.findings[0]
    assert finding.loop == f"Qt event handling run by {entry}() on the GUI thread"
    assert finding.user_caller.endswith("on_ping")  # "Target.on_ping" from Python 3.11


def test_key_events_reach_the_handler() -> None:
    edit = Edit()
    with loopwarden.guard(mode="record") as warden:
        QTest.keyClicks(edit, "ab")
    assert edit.text() == "ab"
    assert primitives(warden) == ["time.sleep", "time.sleep"]
    assert warden.findings[0].user_caller.endswith("keyPressEvent")


def test_the_test_body_around_the_entry_points_is_not_checked() -> None:
    target = Target()
    with loopwarden.guard(mode="record") as warden:
        time.sleep(0.001)
        target.ping.emit()
        QThread.msleep(1)
        assert dispatch.state.entries == []
    assert [f.user_caller.split(" in ")[-1].split(".")[-1] for f in warden.findings] == ["on_ping"]


def test_emit_from_a_worker_marks_nothing() -> None:
    target = Target()
    seen: list[list[str]] = []

    def work() -> None:
        local = Target()  # lives in the worker: the direct slot runs here
        local.ping.connect(lambda: seen.append(list(dispatch.state.entries)))
        local.ping.emit()
        local.on_ping()

    with loopwarden.guard(mode="raise") as warden:
        in_worker(work)
    assert seen == [[]]
    assert warden.findings == []
    del target


def test_a_slot_that_is_a_primitive_is_blamed_on_the_entry_point() -> None:
    # No Python frame of the application between Qt and time.sleep: the
    # wrapper frame is hidden, the finding names the code that clicked.
    button = QPushButton("go")
    button.clicked.connect(lambda: time.sleep(0.001))
    with loopwarden.guard(mode="record") as warden:
        button.click()
    assert primitives(warden) == ["time.sleep"]


def test_no_marking_without_a_warden() -> None:
    seen: list[list[str]] = []
    button = QPushButton("go")
    button.clicked.connect(lambda: seen.append(list(dispatch.state.entries)))
    with loopwarden.keep_installed():
        button.click()
    with loopwarden.guard(mode="record"):
        button.click()
    assert seen == [[], ["QAbstractButton.click"]]


def test_wraps_are_removed_exactly_and_under_the_qwait_rule() -> None:
    originals = {
        (QAbstractButtonType, "click"): QAbstractButtonType.__dict__["click"],
        (SignalInstance, "emit"): SignalInstance.__dict__["emit"],
        (QTest, "qWait"): QTest.__dict__["qWait"],
    }
    with loopwarden.guard(mode="record"):
        for (cls, name), original in originals.items():
            assert cls.__dict__[name] is not original
        # The reentrancy rule on QTest.qWait wraps the marker, not the other way round.
        outer = QTest.__dict__["qWait"].__func__
        assert getattr(outer, "__loopwarden_rule__", None) is not None
        assert outer.__wrapped__.__module__ == "loopwarden.qt.dispatch"
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original


QAbstractButtonType = QPushButton.__mro__[1]
assert QAbstractButtonType.__name__ == "QAbstractButton"


def test_gui_thread_only_worker_identity() -> None:
    with loopwarden.guard(mode="record"):
        assert dispatch.state.gui_thread == threading.get_ident()
    assert dispatch.state.gui_thread is None


needs_speedups = pytest.mark.skipif(
    native.speedups is None, reason="the C extension is not built for this interpreter"
)


@needs_speedups
def test_the_c_marks_are_installed_for_every_c_entry_point() -> None:
    with loopwarden.guard(mode="record"):
        emit = SignalInstance.__dict__["emit"]
        click = QAbstractButtonType.__dict__["click"]
        for marked in (emit, click):
            assert type(marked).__name__ == "MarkMethod"
            assert marked.__module__ == "loopwarden.qt.dispatch"
            assert "loopwarden dispatch mark of" in repr(marked)
        assert emit.__wrapped__ is not emit and emit.__name__ == "emit"


class Chain(QObject):
    """A slot that emits a second signal, whose slot records the marks it runs under."""

    first = Signal()
    second = Signal()
    typed = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[str]] = []
        self.first.connect(self.on_first)
        self.second.connect(self.on_second)

    @Slot()
    def on_first(self) -> None:
        self.second.emit()

    @Slot()
    def on_second(self) -> None:
        self.seen.append(list(dispatch.state.entries))


def test_nested_marks_come_off_in_order_and_after_an_error() -> None:
    chain = Chain()
    with loopwarden.guard(mode="record"):
        chain.first.emit()
        assert chain.seen == [["SignalInstance.emit", "SignalInstance.emit"]]
        assert dispatch.state.entries == []
        with pytest.raises(TypeError):
            chain.typed.emit()  # raised by emit itself (a missing argument), inside the mark
        assert dispatch.state.entries == []
        chain.first.emit()
    assert chain.seen[-1] == ["SignalInstance.emit", "SignalInstance.emit"]
    assert dispatch.state.entries == []


def test_marks_leak_no_reference() -> None:
    import sys

    chain = Chain()
    with loopwarden.guard(mode="record"):

        def counts() -> tuple[int, int]:
            for _ in range(1000):
                chain.first.emit()
            return sys.getrefcount(chain), sys.getrefcount(dispatch.state.entries)

        counts()
        chain.seen.clear()
        first = counts()
        chain.seen.clear()
        assert counts() == first
