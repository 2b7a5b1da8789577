"""`--block-detect=raise`: swallowed errors still fail the test; Qt and asyncio interplay."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_helpers import findings_by_test, make_project, read_report, run_pytest, section

INNER_TESTS = """
import asyncio, gc, time
import pytest
import qasync
from PySide6.QtCore import QTimer
from loopwarden import BlockingCallError


def test_broad_except_swallows():
    async def main():
        try:
            time.sleep(0.001)
        except Exception:
            pass
    asyncio.run(main())


def test_callback_error_goes_to_the_loop_handler():
    async def main():
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, 0.001)
        await asyncio.sleep(0.01)
    asyncio.run(main())


def test_custom_exception_handler_swallows():
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)
        loop.call_soon(time.sleep, 0.001)
        await asyncio.sleep(0.01)
    asyncio.run(main())


def test_never_awaited_task():
    async def worker():
        time.sleep(0.001)

    async def main():
        asyncio.get_running_loop().create_task(worker())
        await asyncio.sleep(0.01)
    asyncio.run(main())
    gc.collect()


def test_raised_at_call_site():
    async def main():
        time.sleep(0.001)
    asyncio.run(main())


def test_qt_slot_under_qasync(qapp):
    hits = []

    def slot():
        hits.append(1)
        time.sleep(0.001)  # raises BlockingCallError; Qt swallows it

    async def main():
        QTimer.singleShot(0, slot)
        await asyncio.sleep(0.05)

    loop = qasync.QEventLoop(qapp)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert hits == [1]


@pytest.mark.qt_no_exception_capture
def test_qt_slot_without_pytest_qt_capture(qapp):
    def slot():
        try:
            time.sleep(0.001)
        except BlockingCallError:
            pass

    async def main():
        QTimer.singleShot(0, slot)
        await asyncio.sleep(0.05)

    loop = qasync.QEventLoop(qapp)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_qtbot_machinery_is_quiet(qtbot):
    from PySide6.QtWidgets import QPushButton

    button = QPushButton("ok")
    qtbot.addWidget(button)
    with qtbot.waitSignal(button.clicked, timeout=2000):
        QTimer.singleShot(0, button.click)
    timer = QTimer()
    timer.setSingleShot(True)
    with qtbot.waitSignal(timer.timeout, timeout=2000):
        timer.start(1)


def test_expected_blocking_does_not_raise():
    import loopwarden

    async def main():
        with loopwarden.expect_blocking("time.sleep"):
            time.sleep(0.001)
    asyncio.run(main())
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, dict[str, Any]]:
    root = make_project(tmp_path_factory.mktemp("raise_mode"), {"test_inner.py": INNER_TESTS})
    report = root / "findings.json"
    result = run_pytest(root, "-rA", "--block-detect=raise", f"--block-detect-report={report}")
    return result, read_report(report)


@pytest.mark.parametrize(
    "test",
    [
        "test_broad_except_swallows",
        "test_callback_error_goes_to_the_loop_handler",
        "test_custom_exception_handler_swallows",
        "test_never_awaited_task",
        "test_raised_at_call_site",
        "test_qt_slot_under_qasync",
        "test_qt_slot_without_pytest_qt_capture",
    ],
)
def test_swallowed_or_not_the_test_fails(
    run: tuple[pytest.RunResult, dict[str, Any]], test: str
) -> None:
    result, report = run
    assert any(line.startswith(f"FAILED test_inner.py::{test}") for line in result.outlines)
    assert findings_by_test(report)[test] == ["call:time.sleep"]
    text = section(result, test)
    assert "time.sleep() [test code]" in text
    assert "(--block-detect=raise)" in text


def test_unswallowed_error_keeps_its_traceback(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, _ = run
    text = section(result, "test_raised_at_call_site")
    assert "BlockingCallError: Blocking call time.sleep()" in text
    assert "Captured loopwarden call" in text


def test_qt_machinery_and_expected_blocking_pass(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, report = run
    for test in ("test_qtbot_machinery_is_quiet", "test_expected_blocking_does_not_raise"):
        assert f"PASSED test_inner.py::{test}" in result.outlines
        assert test not in findings_by_test(report)
    assert result.parseoutcomes() == {"failed": 7, "passed": 2}
