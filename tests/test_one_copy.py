"""One copy of loopwarden per process, even when a host drops it from ``sys.modules``.

pytester restores ``sys.modules`` after each test that uses it; when such a test was the
first to load loopwarden's core, later guards reported nothing (two halves of the core,
each with its own list of active wardens). These tests run in fresh interpreters: this
suite's own process has the core loaded long before any test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_INNER_TESTS = """
import asyncio
import threading
import time

import loopwarden


def test_a_inner_session_loads_the_core(pytester):
    pytester.makepyprojecttoml("[tool.loopwarden]\\nstall_ms = 12.5\\n")
    pytester.parseconfigure("--block-detect")


def test_b_a_later_guard_still_reports_a_blocking_call():
    async def main():
        time.sleep(0.001)

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    assert [f.primitive for f in warden.findings] == ["time.sleep"]


def test_c_a_later_guard_still_reports_a_wrong_thread_call():
    loop = asyncio.new_event_loop()
    try:
        with loopwarden.guard(mode="record") as warden:
            # The loop runs on this thread; a worker schedules on it unsafely.
            worker = threading.Thread(target=lambda: loop.call_soon(print))
            loop.run_until_complete(_run_worker_while_running(worker))
    finally:
        loop.close()
    assert [(f.primitive, f.family) for f in warden.findings] == [("loop.call_soon", "thread")]


async def _run_worker_while_running(worker):
    worker.start()
    while worker.is_alive():
        await asyncio.sleep(0.001)
"""


def test_a_guard_after_pytesters_module_reset_still_reports(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(_INNER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "pytester", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


_PROBE = """
import importlib, sys
import loopwarden
from loopwarden import engine as first
{action}
second = importlib.import_module("loopwarden.engine")
print(second is first, second.__spec__ is first_spec, second.__spec__.loader.__class__.__name__)
"""


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        # Dropped from sys.modules, still held by the package: the same module comes back,
        # with its own spec (and loader) untouched.
        (
            "first_spec = first.__spec__; del sys.modules['loopwarden.engine']",
            "True True SourceFileLoader",
        ),
        # Dropped and also taken off the package: nothing to keep, a fresh import.
        (
            "first_spec = first.__spec__; del sys.modules['loopwarden.engine']; "
            "del loopwarden.engine",
            "False False SourceFileLoader",
        ),
    ],
    ids=["held-by-the-package", "gone-from-the-package"],
)
def test_a_dropped_module_comes_back_only_while_the_package_holds_it(
    action: str, expected: str
) -> None:
    code = _PROBE.format(action=action)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected.split()


def test_the_finder_leaves_other_modules_alone() -> None:
    code = (
        "import sys, loopwarden, json\n"
        "from loopwarden._one_copy import KeepLoadedModules\n"
        "assert isinstance(sys.meta_path[0], KeepLoadedModules)\n"
        "del sys.modules['json']\n"
        "import json as again\n"
        "print(again is not json, KeepLoadedModules.find_spec('json') is None)\n"
        "import loopwarden as lw2\n"
        "print(sum(isinstance(f, KeepLoadedModules) for f in sys.meta_path))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "1"]
