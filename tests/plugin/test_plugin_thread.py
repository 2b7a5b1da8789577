"""`--block-detect` and the ``thread`` family: a wrong-thread call fails its test.

One inner run: a test that schedules on the loop from a worker with
``call_soon`` fails (the finding names the worker and the owner thread), one
that uses ``call_soon_threadsafe`` passes, and a marker allows the family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import findings_by_test, make_project, read_report, run_pytest, section

INNER_TESTS = """
import asyncio, threading
import pytest


def _from_worker(loop, method):
    done = threading.Event()

    def worker():
        try:
            getattr(loop, method)(done.set)
        finally:
            if method == "call_soon":
                done.set()  # the racy call may never run its callback

    thread = threading.Thread(target=worker, name="racer")
    thread.start()
    return thread, done


async def _run(method):
    loop = asyncio.get_running_loop()
    thread, done = _from_worker(loop, method)
    await asyncio.to_thread(thread.join)
    await asyncio.to_thread(done.wait, 5)


def test_call_soon_from_a_worker_fails():
    asyncio.run(_run("call_soon"))


def test_call_soon_threadsafe_passes():
    asyncio.run(_run("call_soon_threadsafe"))


@pytest.mark.allow_blocking("thread", reason="this test documents the race")
def test_marker_allows_the_family():
    asyncio.run(_run("call_soon"))
"""


@pytest.fixture(scope="module")
def inner(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    root = make_project(tmp_path_factory.mktemp("thread"), {"test_inner.py": INNER_TESTS})
    result = run_pytest(root, "--block-detect", "--block-detect-report=report.json", "-q")
    return result, read_report(Path(root) / "report.json")


def test_wrong_thread_call_fails_the_test(inner: tuple[Any, dict[str, Any]]) -> None:
    result, _report = inner
    assert result.ret == 1, "\n".join(result.outlines)
    text = section(result, "test_call_soon_from_a_worker_fails")
    assert "loop.call_soon()" in text and "on thread 'racer'" in text
    assert "call_soon_threadsafe" in text  # the fix


def test_threadsafe_and_allowed_tests_pass(inner: tuple[Any, dict[str, Any]]) -> None:
    result, report = inner
    assert findings_by_test(report) == {
        "test_call_soon_from_a_worker_fails": ["call:loop.call_soon"]
    }
    summary = "\n".join(result.outlines)
    assert "1 failed, 2 passed" in summary
    [finding] = report["findings"]
    assert finding["family"] == "thread" and finding["thread_name"] == "racer"
    assert finding["details"]["owner_thread"] == "MainThread"
