"""`--block-detect` on pytest-qt tests that drive the GUI themselves.

The slot runs inside ``qtbot.mouseClick`` / ``button.click()`` / ``signal.emit()``
while no Qt event loop runs; it is still the application's event handler, so
blocking in it fails the test, naming the slot's line. The test body itself
(time.sleep between clicks) stays unchecked, and the slot's work moved to a
worker thread or an executor passes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from plugin_helpers import findings_by_test, make_project, read_report, run_pytest, section

INNER_TESTS = """
import asyncio, concurrent.futures, sqlite3, threading, time
import pytest
import qasync
from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import QPushButton


def do_sleep(path):
    time.sleep(0.001)


def do_open(path):
    with open(path, "w") as handle:
        handle.write("x")


def do_sqlite(path):
    sqlite3.connect(path).close()


def do_msleep(path):
    QThread.msleep(1)


WORK = {"sleep": do_sleep, "open": do_open, "sqlite": do_sqlite, "msleep": do_msleep}


class Panel(QObject):
    refresh = Signal()

    def __init__(self, work, path, offload=None):
        super().__init__()
        self.button = QPushButton("refresh")
        self.button.clicked.connect(self.on_clicked)
        self.refresh.connect(self.on_clicked)
        self.work, self.path, self.offload = work, path, offload
        self.clicks = 0

    def on_clicked(self):
        self.clicks += 1
        if self.offload is not None:
            self.offload(WORK[self.work], self.path)
        elif self.work == "sleep":
            time.sleep(0.001)  # SLOT sleep
        elif self.work == "open":
            open(self.path, "w").close()  # SLOT open
        elif self.work == "sqlite":
            sqlite3.connect(self.path).close()  # SLOT sqlite
        elif self.work == "msleep":
            QThread.msleep(1)  # SLOT msleep


def drive(qtbot, panel, how):
    if how == "mouseClick":
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    elif how == "click":
        panel.button.click()
    else:
        panel.refresh.emit()


@pytest.mark.parametrize("how", ["mouseClick", "click", "emit"])
@pytest.mark.parametrize("work", sorted(WORK))
def test_slot_blocks(qtbot, tmp_path, work, how):
    panel = Panel(work, str(tmp_path / "data.db"))
    qtbot.addWidget(panel.button)
    drive(qtbot, panel, how)
    assert panel.clicks == 1


def in_worker(work, path):
    thread = threading.Thread(target=work, args=(path,))
    thread.start()
    WORKERS.append(thread)


EXECUTOR = concurrent.futures.ThreadPoolExecutor(1)
WORKERS = []


def in_executor(work, path):
    WORKERS.append(EXECUTOR.submit(work, path))


@pytest.mark.parametrize("how", ["mouseClick", "click", "emit"])
@pytest.mark.parametrize("work", sorted(WORK))
@pytest.mark.parametrize("offload", [in_worker, in_executor], ids=["thread", "executor"])
def test_slot_offloads(qtbot, tmp_path, work, how, offload):
    panel = Panel(work, str(tmp_path / "data.db"), offload)
    qtbot.addWidget(panel.button)
    drive(qtbot, panel, how)
    for worker in WORKERS:
        worker.join() if isinstance(worker, threading.Thread) else worker.result()
    WORKERS.clear()
    assert panel.clicks == 1


def test_async_slot_awaits_run_in_executor(qtbot, qapp, tmp_path):
    path = str(tmp_path / "data.db")
    done = []

    @qasync.asyncSlot(bool)
    async def on_clicked(checked):
        loop = asyncio.get_running_loop()
        for work in WORK.values():
            await loop.run_in_executor(None, work, path)
        done.append(1)

    button = QPushButton("go")
    qtbot.addWidget(button)
    # qasync's wrapper needs at least one argument to bind; clicked may pass none.
    button.clicked.connect(lambda checked=False: on_clicked(checked))

    async def main():
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        while not done:
            await asyncio.sleep(0.01)

    loop = qasync.QEventLoop(qapp)
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
    assert done == [1]


@pytest.mark.parametrize("how", ["mouseClick", "click", "emit"])
def test_body_sleeps_between_clicks(qtbot, tmp_path, how):
    panel = Panel("nothing", str(tmp_path / "x"))
    qtbot.addWidget(panel.button)
    drive(qtbot, panel, how)
    time.sleep(0.001)
    QThread.msleep(1)
    drive(qtbot, panel, how)
    assert panel.clicks == 2
"""

_PRIMITIVE = {
    "sleep": "time.sleep",
    "open": "builtins.open",
    "sqlite": "sqlite3.connect",
    "msleep": "PySide6.QtCore.QThread.msleep",
}
_ENTRY = {
    "mouseClick": "QTest.mouseClick",
    "click": "QAbstractButton.click",
    "emit": "SignalInstance.emit",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, dict[str, Any]]:
    root = make_project(tmp_path_factory.mktemp("qt_dispatch"), {"test_inner.py": INNER_TESTS})
    report = root / "findings.json"
    result = run_pytest(root, "-rA", "--block-detect", f"--block-detect-report={report}")
    return result, read_report(report)


def _slot_line(work: str) -> int:
    return next(
        number
        for number, line in enumerate(INNER_TESTS.splitlines(), start=1)
        if line.endswith(f"# SLOT {work}")
    )


@pytest.mark.parametrize("how", sorted(_ENTRY))
@pytest.mark.parametrize("work", sorted(_PRIMITIVE))
def test_blocking_slot_fails_naming_the_slot(
    run: tuple[pytest.RunResult, dict[str, Any]], work: str, how: str
) -> None:
    result, report = run
    test = f"test_slot_blocks[{work}-{how}]"
    assert f"FAILED test_inner.py::{test}" in " ".join(result.outlines), result.outlines[-40:]
    assert findings_by_test(report)[test] == [f"call:{_PRIMITIVE[work]}"]
    text = section(result, test)
    assert f"Qt event handling run by {_ENTRY[how]}() on the GUI thread" in text
    assert re.search(rf"test_inner\.py:{_slot_line(work)} in Panel\.on_clicked", text), text


def test_offloaded_work_and_the_test_body_pass(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, report = run
    passing = [
        *(
            f"test_slot_offloads[{offload}-{work}-{how}]"
            for offload in ("thread", "executor")
            for work in sorted(_PRIMITIVE)
            for how in ("mouseClick", "click", "emit")
        ),
        "test_async_slot_awaits_run_in_executor",
        *(f"test_body_sleeps_between_clicks[{how}]" for how in ("mouseClick", "click", "emit")),
    ]
    found = findings_by_test(report)
    for test in passing:
        assert f"PASSED test_inner.py::{test}" in result.outlines, test
        assert not any(name.startswith(test) for name in found), found
    assert result.parseoutcomes() == {"failed": 12, "passed": len(passing)}
