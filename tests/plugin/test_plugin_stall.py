"""`--block-detect-stall-ms`: a stall is a finding like any other."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import make_project, read_report, run_pytest

INNER = """
import asyncio
import time


def crunch(seconds):
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:  # pure-Python CPU work: no rule sees it
        total += 1
    return total


def test_cpu_stall_in_a_coroutine():
    async def main():
        crunch(0.3)
        await asyncio.sleep(0.05)

    asyncio.run(main())


def test_healthy_loop():
    async def main():
        for _ in range(5):
            await asyncio.sleep(0.02)

    asyncio.run(main())
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("stall"), {"test_inner.py": INNER})


def test_a_stall_fails_the_test_in_fail_mode(project: Path) -> None:
    result = run_pytest(
        project,
        "--block-detect",
        "--block-detect-stall-ms=100",
        "--block-detect-report=report.json",
        "-rA",
    )
    text = "\n".join(result.outlines)
    assert "loopwarden: stall watchdog 100 ms (from command line)" in text
    assert any(
        line.startswith("FAILED test_inner.py::test_cpu_stall_in_a_coroutine")
        for line in result.outlines
    )
    assert any(
        line.startswith("PASSED test_inner.py::test_healthy_loop") for line in result.outlines
    )
    report = read_report(project / "report.json")
    stalls = [f for f in report["findings"] if f["family"] == "stall"]
    assert [f["nodeid"] for f in stalls] == ["test_inner.py::test_cpu_stall_in_a_coroutine"]
    assert any(frame["function"] == "crunch" for frame in stalls[0]["stack"])


def test_without_the_option_stalls_are_not_watched(project: Path) -> None:
    result = run_pytest(project, "--block-detect", "-rA")
    assert result.ret == 0, "\n".join(result.outlines)
