"""pytest --block-detect sees blocking callbacks scheduled by the test or the package (15.3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import make_project, read_report, run_pytest, section

TESTS = """
import asyncio
import time

import pytest

import mypkg


@pytest.mark.asyncio
async def test_test_schedules():
    asyncio.get_running_loop().call_soon(time.sleep, 0.001)
    await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_package_schedules():
    mypkg.later()
    await asyncio.sleep(0.02)
"""

PACKAGE = """
import asyncio
import time


def later():
    asyncio.get_running_loop().call_soon(time.sleep, 0.001)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(
        tmp_path_factory.mktemp("scheduled"),
        {"test_inner.py": TESTS, "mypkg/__init__.py": PACKAGE},
    )


def test_a_callback_scheduled_by_the_test_fails_it(project: Path) -> None:
    report = project / "all.json"
    result = run_pytest(project, "--block-detect", f"--block-detect-report={report}")
    result.assert_outcomes(failed=2)
    text = section(result, "test_test_schedules")
    assert "test_inner.py:" in text and "test_test_schedules" in text
    sites = {f["nodeid"].split("::")[-1]: f for f in read_report(report)["findings"]}
    assert sites["test_test_schedules"]["details"]["scheduled_via"] == "loop.call_soon"
    assert sites["test_package_schedules"]["user_caller"].endswith("in later")


def test_scope_applies_to_the_scheduling_place(project: Path) -> None:
    result = run_pytest(project, "--block-detect", "--block-detect-scope=mypkg")
    result.assert_outcomes(passed=1, failed=1)
    assert "mypkg" in section(result, "test_package_schedules")
