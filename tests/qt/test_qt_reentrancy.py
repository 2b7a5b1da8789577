"""Family ``reentrancy``: nested Qt event loops started inside a running asyncio
task or callback. In raise mode the error comes before the nested loop starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import qasync
from PySide6 import QtAsyncio
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QPoint, QThread, QTimer
from PySide6.QtGui import QAction, QDrag
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QColorDialog,
    QDialog,
    QFileDialog,
    QFontDialog,
    QInputDialog,
    QMenu,
    QMessageBox,
)
from qt_support import in_worker, primitives, run_coro

import loopwarden

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("safety_net")]


def _dialog() -> QDialog:
    dialog = QDialog()
    dialog.setModal(True)
    return dialog


# Each entry starts a nested event loop; none of them may get as far as showing anything.
NESTED: dict[str, Callable[[], Any]] = {
    "PySide6.QtWidgets.QDialog.exec": lambda: _dialog().exec(),
    "PySide6.QtWidgets.QMessageBox.information": lambda: QMessageBox.information(
        None, "title", "text"
    ),
    "PySide6.QtWidgets.QMenu.exec": lambda: QMenu.exec([QAction("item")], QPoint(0, 0)),
    "PySide6.QtWidgets.QFileDialog.getOpenFileName": lambda: QFileDialog.getOpenFileName(),
    "PySide6.QtCore.QEventLoop.exec": lambda: QEventLoop().exec(),
    "PySide6.QtCore.QCoreApplication.processEvents": lambda: QCoreApplication.processEvents(),
    "PySide6.QtTest.QTest.qWait": lambda: QTest.qWait(10),
    "PySide6.QtCore.QEventLoop.exec_": lambda: QEventLoop().exec_(),
    "PySide6.QtWidgets.QDialog.exec_": lambda: _dialog().exec_(),
    "PySide6.QtWidgets.QColorDialog.getColor": lambda: QColorDialog.getColor(),
    "PySide6.QtWidgets.QFontDialog.getFont": lambda: QFontDialog.getFont(),
    "PySide6.QtGui.QDrag.exec": lambda: QDrag(QObject()).exec(),
    **{
        f"PySide6.QtWidgets.QMessageBox.{name}": (
            lambda name=name: getattr(QMessageBox, name)(None, "title", "text")
        )
        for name in ("warning", "critical", "question", "about")
    },
    "PySide6.QtWidgets.QMessageBox.aboutQt": lambda: QMessageBox.aboutQt(None),
    **{
        f"PySide6.QtWidgets.QFileDialog.{name}": lambda name=name: getattr(QFileDialog, name)()
        for name in (
            "getOpenFileNames",
            "getSaveFileName",
            "getExistingDirectory",
            "getOpenFileUrl",
            "getOpenFileUrls",
            "getSaveFileUrl",
            "getExistingDirectoryUrl",
        )
    },
    **{
        f"PySide6.QtWidgets.QInputDialog.{name}": (
            lambda name=name: getattr(QInputDialog, name)(None, "title", "label")
        )
        for name in ("getText", "getMultiLineText", "getInt", "getDouble")
    },
    "PySide6.QtWidgets.QInputDialog.getItem": lambda: QInputDialog.getItem(
        None, "title", "label", ["a", "b"]
    ),
}


def test_every_reentrancy_rule_is_exercised() -> None:
    from loopwarden.blocking.qt import RULES

    assert {r.name for r in RULES if r.family == "reentrancy"} == set(NESTED)


@pytest.mark.parametrize("primitive", sorted(NESTED))
def test_nested_loop_in_coroutine_raises_before_entering(
    qasync_loop: qasync.QEventLoop, primitive: str
) -> None:
    levels: list[int] = []

    async def main() -> None:
        # Records the loop level it fires at: 1 is qasync's app.exec(), 2 a nested loop.
        QTimer.singleShot(0, lambda: levels.append(QThread.currentThread().loopLevel()))
        NESTED[primitive]()

    with (
        loopwarden.guard(mode="raise") as warden,
        pytest.raises(loopwarden.BlockingCallError) as raised,
    ):
        run_coro(qasync_loop, main())
    assert primitives(warden) == [primitive]
    finding = warden.findings[0]
    assert finding.family == "reentrancy"
    assert "dialog.open()" in finding.suggestion and "asyncWrap" in finding.suggestion
    assert raised.value.finding is finding
    assert 2 not in levels  # raised before any nested loop ran our timer


def test_record_mode_enters_and_keeps_checking_inside(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> int:
        dialog = _dialog()

        def inside_nested_loop() -> None:
            time.sleep(0.001)
            dialog.reject()

        QTimer.singleShot(0, inside_nested_loop)
        return dialog.exec()

    with loopwarden.guard(mode="record") as warden:
        assert run_coro(qasync_loop, main()) == QDialog.DialogCode.Rejected
    assert primitives(warden) == ["PySide6.QtWidgets.QDialog.exec", "time.sleep"]


def test_nested_loop_in_asyncio_callback_is_a_finding(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_soon(QCoreApplication.processEvents)  # the loop swallows the error
        loop.call_soon(done.set_result, None)
        await done

    with loopwarden.guard(mode="raise") as warden:
        run_coro(qasync_loop, main())
    assert primitives(warden) == ["PySide6.QtCore.QCoreApplication.processEvents"]


def test_plain_slot_under_qasync_may_open_a_modal_dialog(qasync_loop: qasync.QEventLoop) -> None:
    # A Qt slot is not an asyncio task or callback: classic Qt code may nest loops.
    async def main() -> int:
        done = asyncio.get_running_loop().create_future()

        def slot() -> None:
            dialog = _dialog()
            QTimer.singleShot(0, dialog.accept)
            done.set_result(dialog.exec())

        QTimer.singleShot(0, slot)
        return await done

    with loopwarden.guard(mode="raise") as warden:
        assert run_coro(qasync_loop, main()) == QDialog.DialogCode.Accepted
    assert warden.findings == []


def test_async_wrap_is_the_silent_fix(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> int:
        dialog = _dialog()

        def show_modal() -> int:  # runs from a QTimer slot, outside any task
            QTimer.singleShot(0, dialog.accept)
            return dialog.exec()

        return await qasync.asyncWrap(show_modal)

    with loopwarden.guard(mode="raise") as warden:
        assert run_coro(qasync_loop, main()) == QDialog.DialogCode.Accepted
    assert warden.findings == []


def test_dialog_open_with_signals_is_silent(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> int:
        dialog = _dialog()
        result = asyncio.get_running_loop().create_future()
        dialog.finished.connect(result.set_result)
        dialog.open()
        QTimer.singleShot(0, dialog.accept)
        return await result

    with loopwarden.guard(mode="raise") as warden:
        assert run_coro(qasync_loop, main()) == QDialog.DialogCode.Accepted
    assert warden.findings == []


def test_qtasyncio_coroutine_dialog_exec_raises(qapp: QApplication) -> None:
    raised: list[loopwarden.BlockingCallError] = []

    async def main() -> None:
        try:
            _dialog().exec()
        except loopwarden.BlockingCallError as error:
            raised.append(error)

    with loopwarden.guard(mode="raise") as warden:
        QtAsyncio.run(asyncio.wait_for(main(), 5), keep_running=False, quit_qapp=True)
    assert primitives(warden) == ["PySide6.QtWidgets.QDialog.exec"]
    assert len(raised) == 1


def test_outside_asyncio_nested_loops_are_not_findings(qapp: QApplication) -> None:
    with loopwarden.guard(mode="raise") as warden:
        QCoreApplication.processEvents()  # test body: no loop
        QTest.qWait(1)
        in_worker(QCoreApplication.processEvents)  # a worker thread
    assert warden.findings == []


def test_menu_exec_instance_form_raises_before_entering(qasync_loop: qasync.QEventLoop) -> None:
    menu = QMenu()
    menu.addAction("item")

    async def main() -> None:
        menu.exec(QPoint(0, 0))  # the common instance form, served by Shiboken from C

    with (
        loopwarden.guard(mode="raise") as warden,
        pytest.raises(loopwarden.BlockingCallError),
    ):
        run_coro(qasync_loop, main())
    assert primitives(warden) == ["PySide6.QtWidgets.QMenu.exec"]
    assert not menu.isVisible()
