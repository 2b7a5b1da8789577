"""pytest-xdist aggregation, pytest-asyncio auto mode with async fixtures, anyio plugin."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_helpers import findings_by_test, make_project, read_report, run_pytest, section

INNER_TESTS = """
import asyncio, time
import pytest


@pytest.fixture
async def async_fixture_that_blocks():
    time.sleep(0.001)
    yield "value"


async def test_auto_mode_call():
    time.sleep(0.001)


async def test_auto_mode_async_fixture(async_fixture_that_blocks):
    assert async_fixture_that_blocks == "value"


@pytest.mark.anyio
async def test_anyio_plugin(anyio_backend):
    time.sleep(0.001)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("n", range(4))
def test_plain_loop(n):
    async def main():
        time.sleep(0.001)
    asyncio.run(main())


async def test_quiet():
    await asyncio.sleep(0)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, dict[str, Any]]:
    root = make_project(
        tmp_path_factory.mktemp("xdist"),
        {"test_inner.py": INNER_TESTS},
        ini_extra="asyncio_mode = auto\n",
    )
    report = root / "findings.json"
    result = run_pytest(
        root, "-rA", "-n", "2", "--block-detect=raise", f"--block-detect-report={report}"
    )
    return result, read_report(report)


def test_every_worker_detects_and_the_controller_reports_all(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, report = run
    assert result.parseoutcomes() == {"failed": 6, "errors": 1, "passed": 1}
    assert report["summary"]["total"] == 7
    assert {f["worker"] for f in report["findings"]} == {"gw0", "gw1"}
    result.stdout.fnmatch_lines(["*loopwarden: 7 blocking calls at 4 places to fix*"])


def test_failures_travel_from_workers(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, _ = run
    text = section(result, "test_auto_mode_call")
    assert "BlockingCallError: Blocking call time.sleep()" in text
    assert "Captured loopwarden call" in text


def test_async_frameworks(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    _, report = run
    found = findings_by_test(report)
    assert found["test_auto_mode_call"] == ["call:time.sleep"]
    assert found["test_auto_mode_async_fixture"] == ["setup:time.sleep"]
    assert found["test_anyio_plugin"] == ["call:time.sleep"]
    assert "test_quiet" not in found
