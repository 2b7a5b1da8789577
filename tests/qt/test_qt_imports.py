"""Imports on the guarded GUI thread: PySide6's import hook (shibokensupport reads
source on every import statement) and lazy imports inside coroutines and slots
are never findings, and Qt modules imported late are patched."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import qasync
from qt_support import in_qt_slot, run_coro

import loopwarden
from rules_support import run_script

pytestmark = pytest.mark.timeout(60)


def _write_module(directory: Path, name: str) -> None:
    (directory / f"{name}.py").write_text("import json\nVALUE = json.dumps([1])\n")


def test_lazy_import_in_coroutine_is_silent(
    qasync_loop: qasync.QEventLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(tmp_path, "loopwarden_lazy_coro")
    monkeypatch.syspath_prepend(str(tmp_path))

    async def main() -> str:
        import loopwarden_lazy_coro

        return str(loopwarden_lazy_coro.VALUE)

    try:
        with loopwarden.guard(mode="raise") as warden:
            assert run_coro(qasync_loop, main()) == "[1]"
    finally:
        sys.modules.pop("loopwarden_lazy_coro", None)
    assert warden.findings == []


def test_lazy_import_in_qt_slot_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_module(tmp_path, "loopwarden_lazy_slot")
    monkeypatch.syspath_prepend(str(tmp_path))

    def slot() -> str:
        import loopwarden_lazy_slot

        return str(loopwarden_lazy_slot.VALUE)

    try:
        with loopwarden.guard(mode="raise") as warden:
            assert in_qt_slot(slot) == "[1]"
    finally:
        sys.modules.pop("loopwarden_lazy_slot", None)
    assert warden.findings == []


_FRESH_PROCESS = textwrap.dedent(
    """
    import asyncio, importlib, sys, time
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    import loopwarden
    from loopwarden.registry import registry

    app = QApplication([])
    warden = loopwarden.activate(mode="raise")
    results = {}

    def slot():
        # First import of a PySide6 module inside a running Qt loop: the
        # shibokensupport hook runs, and the module's rules get patched.
        from PySide6 import QtSerialPort
        from PySide6.QtCore import QThread

        # The guard notices new modules at the next patched call on this thread.
        QThread.msleep(0)
        results["patched"] = "PySide6.QtSerialPort:QSerialPort.waitForReadyRead" in (
            registry.patched_targets()
        )
        app.quit()

    QTimer.singleShot(0, slot)
    QTimer.singleShot(5000, app.quit)
    app.exec()

    async def main():
        importlib.import_module("PySide6.QtXml")  # a fresh PySide6 import in a coroutine
        import colorsys  # a fresh stdlib import
        await asyncio.sleep(0)
        time.sleep(0.001)  # still guarded after all that

    loop = qasync.QEventLoop(app)
    try:
        loop.run_until_complete(main())
    except loopwarden.BlockingCallError:
        pass
    print(results["patched"], [f.primitive for f in warden.findings])
    """
)


def test_fresh_pyside_imports_are_silent_and_patched() -> None:
    output = run_script(_FRESH_PROCESS)
    assert output.strip() == "True ['time.sleep']"
