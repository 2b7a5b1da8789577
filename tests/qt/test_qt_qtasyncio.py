"""PySide6.QtAsyncio: its loop thread is guarded; its executor threads are not,
although QtAsyncio leaks a running loop into them."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from PySide6 import QtAsyncio
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication
from qt_support import primitives

import loopwarden

pytestmark = pytest.mark.timeout(30)


def _run(coro: Any) -> Any:
    # quit_qapp=True only ends this app.exec() (the loop's stop() needs it to
    # return at all); pytest-qt's QApplication lives on.
    return QtAsyncio.run(asyncio.wait_for(coro, 5), keep_running=False, quit_qapp=True)


def test_coroutine_is_guarded(qapp: QApplication) -> None:
    async def main() -> None:
        try:
            time.sleep(0.001)
        except loopwarden.BlockingCallError as error:
            raised.append(error)

    raised: list[loopwarden.BlockingCallError] = []
    with loopwarden.guard(mode="raise") as warden:
        _run(main())
    assert primitives(warden) == ["time.sleep"]
    assert len(raised) == 1
    assert "QAsyncioEventLoop" in warden.findings[0].loop


def test_executor_threads_are_not_guarded(qapp: QApplication) -> None:
    seen: dict[str, Any] = {}

    def blocking() -> None:
        seen["leaked_loop"] = asyncio._get_running_loop()
        seen["thread"] = threading.get_ident()
        time.sleep(0.001)
        QThread.msleep(1)

    async def main() -> None:
        await asyncio.get_running_loop().run_in_executor(None, blocking)

    with loopwarden.guard(mode="raise") as warden:
        _run(main())
    assert seen["thread"] != threading.get_ident()
    assert seen["leaked_loop"] is not None  # the leak is real: we must not trust it
    assert warden.findings == []
