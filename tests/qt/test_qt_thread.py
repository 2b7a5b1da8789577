"""Family ``thread``, Qt half: real widgets offscreen, real threads, real qasync/QtAsyncio loops.

Wrong-thread calls run in ``"raise"`` mode where the unsafe call must not
happen (widgets touched from a worker); Qt's own warnings are safe to cause
(Qt refuses the call and warns), so those tests use ``"record"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import pytest
import qasync
from PySide6 import QtAsyncio
from PySide6.QtCore import (
    Q_ARG,
    QEventLoop,
    QMetaObject,
    QObject,
    QSocketNotifier,
    Qt,
    QThread,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtWidgets import QApplication, QGraphicsScene, QLabel, QWidget
from qt_support import in_worker, primitives, run_coro

import loopwarden
from loophelpers import python_frames_entered
from loopwarden import BlockingCallError, native, scheduling
from loopwarden.affinity import checks

pytestmark = pytest.mark.timeout(30)


def _raised_in_worker(func: Any) -> BlockingCallError:
    with pytest.raises(BlockingCallError) as info:
        in_worker(func)
    return info.value


def _spin(until: Any, timeout_ms: int = 5000) -> None:
    """Run a Qt event loop on the GUI thread until ``until()`` is true."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: until() and loop.quit())
    poll.start(5)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    poll.stop()
    assert until(), "the GUI thread never got the call"


# -- GUI objects off the GUI thread ----------------------------------------------


def test_widget_calls_from_a_worker_are_reported(qapp: QApplication) -> None:
    label = QLabel("before")
    widget = QWidget()
    scene = QGraphicsScene()
    with loopwarden.guard(mode="raise") as warden:
        error = _raised_in_worker(lambda: label.setText("from worker"))
        _raised_in_worker(widget.show)
        _raised_in_worker(widget.update)
        _raised_in_worker(lambda: scene.addText("x"))
    assert label.text() == "before"  # raise mode: the call was not made
    assert not widget.isVisible()
    assert primitives(warden) == [
        "QLabel.setText",
        "QWidget.show",
        "QWidget.update",
        "QGraphicsScene.addText",
    ]
    finding = error.finding
    assert finding.family == "thread" and finding.thread_name == "test-worker"
    assert finding.details["owner_thread"] == "MainThread"
    assert finding.loop == "the Qt GUI thread"
    assert "<lambda>" in finding.user_caller and finding.stack[-1].filename == __file__
    assert "QueuedConnection" in finding.suggestion


def test_widget_calls_on_the_gui_thread_are_silent(
    qapp: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    label = QLabel()

    async def main() -> None:
        label.setText("on the loop")
        label.show()
        label.update()
        label.hide()

    with loopwarden.guard(mode="raise") as warden:
        run_coro(qasync_loop, main())
        label.setText("test body")
    assert warden.findings == []
    assert label.text() == "test body"


class _Bridge(QObject):
    """Lives on the GUI thread; a worker talks to it through a queued signal."""

    text = Signal(str)


def test_queued_signal_invoke_method_and_context_single_shot_are_silent(
    qapp: QApplication,
) -> None:
    label = QLabel()
    bridge = _Bridge()
    bridge.text.connect(label.setText, Qt.ConnectionType.QueuedConnection)
    got: list[tuple[str, bool]] = []

    def worker() -> None:
        bridge.text.emit("via signal")
        QMetaObject.invokeMethod(label, "clear", Qt.ConnectionType.QueuedConnection)
        QMetaObject.invokeMethod(
            label, "setText", Qt.ConnectionType.QueuedConnection, Q_ARG(str, "via invokeMethod")
        )
        QTimer.singleShot(
            0, bridge, lambda: got.append(("single shot", threading.current_thread() is main))
        )

    main = threading.current_thread()
    with loopwarden.guard(mode="raise") as warden:
        in_worker(worker)
        _spin(lambda: label.text() == "via invokeMethod" and got)
    assert warden.findings == []
    assert got == [("single shot", True)]  # ran, and on the GUI thread


class _Worker(QObject):
    """A worker object moved to a QThread: owns its timer, reports with signals."""

    done = Signal(str)

    @Slot()
    def run(self) -> None:
        self.timer = QTimer(self)  # its own child, in its own thread
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._finish)
        self.timer.start(1)
        QTimer.singleShot(0, lambda: None)  # this thread runs an event loop

    @Slot()
    def _finish(self) -> None:
        self.timer.stop()
        self.done.emit(f"done in {QThread.currentThread().objectName()}")


def test_qthread_worker_moved_with_move_to_thread_is_silent(qapp: QApplication) -> None:
    label = QLabel()
    thread = QThread()
    thread.setObjectName("worker-qthread")
    worker = _Worker()
    with loopwarden.guard(mode="raise") as warden:
        worker.moveToThread(thread)  # pushed from its own (GUI) thread: fine
        thread.started.connect(worker.run)
        worker.done.connect(label.setText)  # auto: queued to the label's thread
        thread.start()
        _spin(lambda: label.text() != "")
        thread.quit()
        thread.wait(5000)
    assert warden.findings == []
    assert label.text() == "done in worker-qthread"


def test_a_worker_owns_the_qobjects_it_creates(qapp: QApplication) -> None:
    def worker() -> bool:
        owner = QObject()
        child = QObject()
        child.setParent(owner)
        timer = QTimer()
        timer.setInterval(10)
        loop = QEventLoop()  # this thread now runs a Qt event loop
        timer.timeout.connect(loop.quit)
        timer.start()
        QTimer.singleShot(0, lambda: None)
        loop.exec()
        timer.stop()
        return child.parent() is owner

    with loopwarden.guard(mode="raise") as warden:
        assert in_worker(worker) is True
    assert warden.findings == []


# -- QObjects used from another thread than their thread() ---------------------------


def test_qobject_affinity_violations_are_reported(qapp: QApplication) -> None:
    timer = QTimer()
    parent = QObject()
    child = QObject()
    with loopwarden.guard(mode="raise") as warden:
        error = _raised_in_worker(lambda: timer.start(10))
        _raised_in_worker(timer.stop)
        _raised_in_worker(lambda: child.setParent(parent))
        _raised_in_worker(lambda: child.moveToThread(QThread.currentThread()))
    assert not timer.isActive() and child.parent() is None and child.thread() is qapp.thread()
    assert primitives(warden) == [
        "QTimer.start",
        "QTimer.stop",
        "QObject.setParent",
        "QObject.moveToThread",
    ]
    assert error.finding.details["object"] == "QTimer"
    assert error.finding.details["owner_thread"] == "MainThread"


def test_single_shot_from_a_thread_without_qt_event_loop_is_reported(qapp: QApplication) -> None:
    context = QObject()
    ran: list[str] = []
    with loopwarden.guard(mode="raise") as warden:
        error = _raised_in_worker(lambda: QTimer.singleShot(0, lambda: ran.append("never")))
        # A delay with a context object still makes the timer in this thread.
        _raised_in_worker(lambda: QTimer.singleShot(10, context, lambda: ran.append("never")))
    assert primitives(warden) == ["QTimer.singleShot", "QTimer.singleShot"]
    assert "never runs" in error.finding.suggestion
    assert ran == []


# -- Qt's own warnings ------------------------------------------------------------


def test_qt_thread_warnings_become_findings_with_the_python_stack(
    qapp: QApplication, qtlog: Any
) -> None:
    parent = QObject()

    def make_child() -> bool:
        child = QObject(parent)  # Qt refuses the parent and warns
        # Checked and dropped here: a QObject left to be collected after the
        # thread it lives in has ended can crash the process at some later
        # garbage collection, far from this test.
        orphaned = child.parent() is None
        del child
        return orphaned

    def own_timer_without_loop() -> None:
        timer = QTimer()
        timer.start(5)  # the worker's own timer, but no event dispatcher

    with loopwarden.guard(mode="record") as warden:
        orphaned = in_worker(make_child)
        in_worker(own_timer_without_loop)
    assert orphaned
    assert primitives(warden) == ["QObject.__init__", "QObject.startTimer"]
    child_finding = warden.findings[0]
    assert child_finding.thread_name == "test-worker"
    assert "make_child" in child_finding.user_caller
    assert "Cannot create children" in child_finding.details["qt_message"]
    # Chained: pytest-qt's own capture still got both messages.
    messages = [record.message for record in qtlog.records]
    assert any("Cannot create children" in m for m in messages)
    assert any("event dispatcher" in m for m in messages)


def _orphan_in_worker() -> None:
    # Qt refuses the parent from another thread and warns; the object is
    # deleted on the worker thread it lives in, before that thread ends.
    orphan = QObject(QApplication.instance())
    del orphan


def test_message_handler_is_restored_exactly(qapp: QApplication) -> None:
    from PySide6.QtCore import qInstallMessageHandler

    seen: list[str] = []

    def mine(msg_type: Any, context: Any, message: str) -> None:
        seen.append(message)

    before = qInstallMessageHandler(mine)
    try:
        with loopwarden.guard(mode="record") as warden:
            in_worker(_orphan_in_worker)
        current = qInstallMessageHandler(mine)
        assert current is mine  # ours is gone, the previous one is back
        in_worker(_orphan_in_worker)  # no warden: not a finding
    finally:
        qInstallMessageHandler(before)
    assert primitives(warden) == ["QObject.__init__"]
    assert len(seen) == 2  # passed on while guarded, received directly after


def test_a_wrong_thread_call_is_not_reported_twice_for_qts_warning(qapp: QApplication) -> None:
    timer = QTimer()
    with loopwarden.guard(mode="record") as warden:
        in_worker(lambda: timer.start(10))  # patched call, then Qt warns about it
    assert primitives(warden) == ["QTimer.start"]
    assert not timer.isActive()


# -- qasync and QtAsyncio loops ---------------------------------------------------


def test_qasync_loop_from_a_worker(qapp: QApplication, qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                loop.call_soon(lambda: None)
            except BlockingCallError as exc:
                errors.append(exc)
            loop.call_soon_threadsafe(fut.set_result, "safe")

        fut = loop.create_future()
        await loop.run_in_executor(None, worker)
        assert await fut == "safe"
        assert len(errors) == 1

    with loopwarden.guard(mode="raise") as warden:
        run_coro(qasync_loop, main())
    assert primitives(warden) == ["loop.call_soon"]
    assert warden.findings[0].details["owner_thread"] == "MainThread"
    assert "qasync" in warden.findings[0].loop


def test_qasyncs_own_timer_is_not_checked_again_on_every_loop_turn(
    qapp: QApplication, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # qasync runs every call_soon/call_later as a timer of its _SimpleTimer; the
    # loop-method check judged that call's thread already, so startTimer and
    # killTimer of that object skip the object-thread check (two Shiboken calls).
    asked: list[str] = []
    real_thread = qasync._SimpleTimer.thread

    def thread(self: Any) -> Any:
        asked.append("thread()")
        return real_thread(self)

    monkeypatch.setattr(qasync._SimpleTimer, "thread", thread)

    async def turns() -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        await asyncio.sleep(0.002)

    with loopwarden.guard(mode="record") as warden:
        run_coro(qasync_loop, turns())
        other = QTimer()
        in_worker(lambda: other.start(10))  # any other object's timer is still checked
    assert asked == []
    assert primitives(warden)[:1] == ["QTimer.start"]


@pytest.mark.skipif(native.speedups is None, reason="the C extension is not built here")
def test_a_qasync_loop_turn_enters_no_python_wrapper_of_ours(
    qapp: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    # Each qasync turn: call_soon from the C Task, call_later from qasync's call_soon
    # (with *args: bound), startTimer and killTimer of qasync's timer (a QObject: its
    # methods always bind). All four decide in C, with no Python frame of ours.
    entered: list[str] = []

    async def turns() -> None:
        await asyncio.sleep(0)
        with python_frames_entered({scheduling.__file__, checks.__file__}) as frames:
            for _ in range(5):
                await asyncio.sleep(0)
        entered.extend(frames)

    with loopwarden.guard(mode="record") as warden:
        start_timer = QObject.__dict__["startTimer"]
        assert type(start_timer).__name__ == "OwnerMethod"
        assert start_timer.__name__ == "startTimer"
        assert start_timer.__wrapped__ is start_timer.python_wrapper.__wrapped__
        run_coro(qasync_loop, turns())
        other = QTimer()
        in_worker(lambda: other.start(10))  # any other object's timer is still checked
    assert entered == []
    assert primitives(warden)[:1] == ["QTimer.start"]


def test_qtasyncio_loop_from_a_worker(qapp: QApplication) -> None:
    results: list[Any] = []

    async def double(x: int) -> int:
        return 2 * x

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def worker() -> None:
            try:
                loop.call_soon(lambda: None)
            except BlockingCallError as exc:
                results.append(exc.finding.primitive)
            results.append(asyncio.run_coroutine_threadsafe(double(21), loop).result(5))

        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)

    with loopwarden.guard(mode="raise") as warden:
        QtAsyncio.run(asyncio.wait_for(main(), 5), keep_running=False, quit_qapp=True)
    assert results == ["loop.call_soon", 42]
    assert primitives(warden) == ["loop.call_soon"]
    assert "QAsyncioEventLoop" in warden.findings[0].loop


# -- every Qt rule of the table: fires from a worker, silent on the owner's thread ----


def _instances(qapp: QApplication) -> dict[str, Any]:
    from PySide6.QtGui import QCursor, QPixmap, QTextDocument
    from PySide6.QtWidgets import (
        QComboBox,
        QDialog,
        QGraphicsRectItem,
        QGraphicsView,
        QLineEdit,
        QListWidget,
        QMainWindow,
        QPlainTextEdit,
        QProgressBar,
        QPushButton,
        QSlider,
        QSpinBox,
        QStatusBar,
        QTableWidget,
        QTextEdit,
    )

    return {
        "QWidget": QWidget(),
        "QDialog": QDialog(),
        "QLabel": QLabel(),
        "QLineEdit": QLineEdit(),
        "QAbstractButton": QPushButton(),
        "QTextEdit": QTextEdit(),
        "QPlainTextEdit": QPlainTextEdit(),
        "QProgressBar": QProgressBar(),
        "QAbstractSlider": QSlider(),
        "QSpinBox": QSpinBox(),
        "QComboBox": QComboBox(),
        "QListWidget": QListWidget(),
        "QTableWidget": QTableWidget(),
        "QStatusBar": QStatusBar(),
        "QMainWindow": QMainWindow(),
        "QGraphicsScene": QGraphicsScene(),
        "QGraphicsView": QGraphicsView(),
        "QGraphicsItem": QGraphicsRectItem(),
        "QClipboard": qapp.clipboard(),
        "QCursor": QCursor(),
        "QGuiApplication": qapp,
        "QPixmap": QPixmap(4, 4),
        "QTimer": QTimer(),
        "QObject": QObject(),
        "QTextDocument": QTextDocument(),
    }


def _table_rules() -> list[Any]:
    from loopwarden.affinity.qt_rules import RULES

    return [rule for rule in RULES if rule.name != "QTimer.singleShot"]


def test_every_qt_table_rule_fires_from_a_worker_and_is_silent_on_the_gui_thread(
    qapp: QApplication,
) -> None:
    objects = _instances(qapp)
    rules = _table_rules()
    reported: list[str] = []
    with loopwarden.guard(mode="raise") as warden:
        for rule in rules:
            cls, method = rule.name.split(".")
            obj = objects[cls]
            # No arguments: in raise mode the wrapper raises before Qt sees them.
            error = _raised_in_worker(lambda obj=obj, method=method: getattr(obj, method)())
            reported.append(error.finding.primitive)
        gui_thread_findings = len(warden.findings)
        for rule in rules:
            cls, method = rule.name.split(".")
            if method in ("show", "setVisible", "open", "exec", "moveToThread", "setFocus"):
                continue  # would show windows or needs an argument that matters
            # A TypeError means Qt wanted arguments: the wrapper let the call through.
            with contextlib.suppress(TypeError):
                getattr(objects[cls], method)()
    assert reported == [rule.name for rule in rules]
    assert len(warden.findings) == gui_thread_findings  # nothing on the GUI thread
    for obj in objects.values():
        if isinstance(obj, QWidget):
            obj.close()


def test_qt_warning_findings_in_raise_and_warn_modes(
    qapp: QApplication, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import warnings

    parent = QObject()

    def make_child() -> None:
        QObject(parent)

    # raise: a message handler cannot raise into Qt; the finding is recorded and logged.
    with (
        caplog.at_level(logging.ERROR, logger="loopwarden"),
        loopwarden.guard(mode="raise") as raising,
    ):
        in_worker(make_child)  # no exception reaches the worker
    assert primitives(raising) == ["QObject.__init__"]
    assert any("Cannot create children" in r.getMessage() for r in caplog.records)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with loopwarden.guard(mode="warn") as warning:
            in_worker(make_child)
    assert primitives(warning) == ["QObject.__init__"]
    ours = [w for w in caught if issubclass(w.category, loopwarden.BlockingCallWarning)]
    assert len(ours) == 1 and ours[0].filename == __file__


def test_a_socket_notifier_toggled_from_another_thread_gets_notifier_advice(
    qapp: QApplication,
) -> None:
    # qasync's own suite closes a loop from another thread than the one that
    # ran it; its read notifiers are disabled there and Qt warns.
    ours, theirs = socket.socketpair()
    notifier = QSocketNotifier(ours.fileno(), QSocketNotifier.Type.Read)
    try:
        with loopwarden.guard(mode="record") as warden:
            notifier.setEnabled(False)  # on its own thread: silent
            # Qt warns and leaves its dispatcher alone (enabling, not disabling:
            # a registration left behind for a closed socket crashes later).
            in_worker(lambda: notifier.setEnabled(True))
            notifier.setEnabled(False)
        assert primitives(warden) == ["QSocketNotifier.setEnabled"]
        finding = warden.findings[0]
        assert finding.thread_name == "test-worker"
        assert "QSocketNotifier" in finding.suggestion
        assert "timer" not in finding.suggestion.lower()
    finally:
        ours.close()  # the notifier is disabled on its own thread by now
        theirs.close()
