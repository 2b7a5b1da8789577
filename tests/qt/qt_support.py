"""Helpers for the Qt tests: run code in a real Qt slot, a worker thread or a
qasync coroutine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import qasync
from PySide6.QtCore import QEventLoop, QTimer

import loopwarden


def run_coro(loop: qasync.QEventLoop, coro: Coroutine[Any, Any, Any], timeout: float = 5) -> Any:
    """Run ``coro`` on the qasync loop (inside ``app.exec()``), with a timeout."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def in_qt_slot(func: Callable[[], Any], timeout_ms: int = 5000) -> Any:
    """Call ``func`` from a timer slot of a running ``QEventLoop.exec()``.

    No asyncio loop runs: only the GUI-thread probe can guard the call.
    Returns what ``func`` returned; re-raises what it raised.
    """
    loop = QEventLoop()
    outcome: dict[str, Any] = {}

    def slot() -> None:
        try:
            outcome["result"] = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            outcome["error"] = exc
        finally:
            loop.quit()

    QTimer.singleShot(0, slot)
    guard_timer = QTimer()
    guard_timer.setSingleShot(True)
    guard_timer.timeout.connect(loop.quit)
    guard_timer.start(timeout_ms)
    loop.exec()
    guard_timer.stop()
    if "error" in outcome:
        raise outcome["error"]
    assert "result" in outcome, "the slot did not run before the timeout"
    return outcome["result"]


def in_worker(func: Callable[[], Any], timeout: float = 5) -> Any:
    """Call ``func`` in a plain worker thread and return its result (or raise its error)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="test-worker")
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "worker did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def primitives(warden: loopwarden.Warden) -> list[str]:
    return [finding.primitive for finding in warden.findings]
