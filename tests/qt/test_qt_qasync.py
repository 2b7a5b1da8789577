"""qasync: slots, coroutines and callbacks on the GUI thread are guarded; workers are not."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
import qasync
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from qt_support import primitives, run_coro

import loopwarden

pytestmark = pytest.mark.timeout(30)


def test_coroutine_is_guarded(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> None:
        time.sleep(0.001)

    with loopwarden.guard(mode="raise") as warden, pytest.raises(loopwarden.BlockingCallError):
        run_coro(qasync_loop, main())
    assert primitives(warden) == ["time.sleep"]
    assert "qasync" in warden.findings[0].loop


def test_timer_slot_sees_the_running_loop(qasync_loop: qasync.QEventLoop, qtbot) -> None:
    async def main() -> None:
        done = asyncio.get_running_loop().create_future()

        def slot() -> None:
            try:
                QThread.msleep(1)
            finally:
                done.set_result(None)

        QTimer.singleShot(0, slot)
        await done

    with loopwarden.guard(mode="raise") as warden, qtbot.captureExceptions() as errors:
        run_coro(qasync_loop, main())
    # The error raised in the slot went to sys.excepthook, not to us: still recorded.
    assert primitives(warden) == ["PySide6.QtCore.QThread.msleep"]
    assert [type(error[1]) for error in errors] == [loopwarden.BlockingCallError]


class _Receiver(QObject):
    def __init__(self, done: asyncio.Future[str]) -> None:
        super().__init__()
        self.done = done

    @Slot(str)
    def on_result(self, text: str) -> None:
        time.sleep(0.001)  # a queued slot: runs on the GUI thread
        self.done.set_result(text)


class _Worker(QThread):
    result = Signal(str)

    def run(self) -> None:
        time.sleep(0.001)  # the worker thread itself is never guarded
        self.result.emit("done")


def test_queued_slot_from_a_qthread_is_guarded(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> str:
        receiver = _Receiver(asyncio.get_running_loop().create_future())
        worker = _Worker()
        worker.result.connect(receiver.on_result)
        worker.start()
        text = await receiver.done
        worker.wait(5000)
        return text

    with loopwarden.guard(mode="record") as warden:
        assert run_coro(qasync_loop, main()) == "done"
    assert primitives(warden) == ["time.sleep"]
    assert warden.findings[0].thread_id == threading.get_ident()


def test_async_slot_is_guarded(qasync_loop: qasync.QEventLoop) -> None:
    class Button(QObject):
        clicked = Signal(bool)  # qasync 0.28's asyncSlot needs at least one argument

    async def main() -> None:
        done = asyncio.get_running_loop().create_future()

        @qasync.asyncSlot()
        async def on_click(checked: bool) -> None:
            try:
                time.sleep(0.001)
            finally:
                done.set_result(None)

        button = Button()
        button.clicked.connect(on_click)
        button.clicked.emit(False)
        await done

    with loopwarden.guard(mode="record") as warden:
        run_coro(qasync_loop, main())
    assert primitives(warden) == ["time.sleep"]


def test_finding_in_asyncio_callback_is_recorded_though_swallowed(
    qasync_loop: qasync.QEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_soon(time.sleep, 0.001)  # raises inside the loop's callback runner
        loop.call_soon(done.set_result, None)
        await done

    with caplog.at_level(logging.ERROR), loopwarden.guard(mode="raise") as warden:
        run_coro(qasync_loop, main())
    assert primitives(warden) == ["time.sleep"]


def test_executors_are_not_guarded(qasync_loop: qasync.QEventLoop) -> None:
    def blocking() -> str:
        time.sleep(0.001)
        QThread.msleep(1)
        return threading.current_thread().name

    # Created and shut down outside the loop: shutdown() joins its QThreads,
    # which on the loop thread would itself be a finding (QThread.wait).
    executor = qasync.QThreadExecutor(1)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        in_qthread_executor = await loop.run_in_executor(executor, blocking)
        in_default_executor = await loop.run_in_executor(None, blocking)
        in_to_thread = await asyncio.to_thread(blocking)
        return [in_qthread_executor, in_default_executor, in_to_thread]

    with loopwarden.guard(mode="raise") as warden:
        names = run_coro(qasync_loop, main())
    executor.shutdown(wait=True)
    assert threading.current_thread().name not in names
    assert warden.findings == []
