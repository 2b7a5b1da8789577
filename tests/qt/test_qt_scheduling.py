"""Callbacks scheduled through qasync and QTimer.singleShot name their scheduling line (15.3)."""

from __future__ import annotations

import asyncio
import functools
import time

import qasync
from PySide6.QtCore import QEventLoop, QTimer
from qt_support import run_coro

import loopwarden

SLEEP = 0.002


def _schedule_with_qasync() -> None:
    asyncio.get_running_loop().call_soon(time.sleep, SLEEP)


def _schedule_with_single_shot() -> None:
    # singleShot calls its functor without arguments: bind time.sleep's.
    QTimer.singleShot(0, functools.partial(time.sleep, SLEEP))


def test_qasync_call_soon_names_the_scheduling_line(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> None:
        _schedule_with_qasync()
        await asyncio.sleep(0.05)

    with loopwarden.guard(mode="record") as warden:
        run_coro(qasync_loop, main())
    (finding,) = [f for f in warden.findings if f.primitive == "time.sleep"]
    assert finding.user_caller.endswith("in _schedule_with_qasync")
    assert finding.details["scheduled_via"] == "loop.call_soon"


def test_single_shot_names_the_scheduling_line(qasync_loop: qasync.QEventLoop) -> None:
    async def main() -> None:
        _schedule_with_single_shot()
        await asyncio.sleep(0.05)

    with loopwarden.guard(mode="record") as warden:
        run_coro(qasync_loop, main())
    (finding,) = [f for f in warden.findings if f.primitive == "time.sleep"]
    assert finding.user_caller.endswith("in _schedule_with_single_shot")
    assert finding.details["scheduled_via"] == "QTimer.singleShot"


def test_single_shot_in_a_plain_qt_event_loop() -> None:
    loop = QEventLoop()
    with loopwarden.guard(mode="record") as warden:
        _schedule_with_single_shot()
        QTimer.singleShot(50, loop.quit)
        loop.exec()
    (finding,) = [f for f in warden.findings if f.primitive == "time.sleep"]
    assert finding.user_caller.endswith("in _schedule_with_single_shot")


def test_qtasyncio_call_soon_names_the_scheduling_line(qapp: object) -> None:
    from PySide6 import QtAsyncio

    async def main() -> None:
        _schedule_with_qasync()  # any running loop: here QtAsyncio's
        await asyncio.sleep(0.05)

    with loopwarden.guard(mode="record") as warden:
        # quit_qapp=True only ends this app.exec(); pytest-qt's QApplication lives on.
        QtAsyncio.run(asyncio.wait_for(main(), 5), keep_running=False, quit_qapp=True)
    (finding,) = [f for f in warden.findings if f.primitive == "time.sleep"]
    assert "QAsyncioEventLoop" in finding.loop
    assert finding.user_caller.endswith("in _schedule_with_qasync")
    assert finding.details["scheduled_via"] == "loop.call_soon"
