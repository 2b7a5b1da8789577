"""warn mode (warnings + grouped summary), record mode with scope and [tool.loopwarden]."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_helpers import findings_by_test, make_project, read_report, run_pytest

WARN_TESTS = """
import asyncio, time
import pytest


async def _sleepy():
    time.sleep(0.001)


@pytest.mark.parametrize("n", range(3))
def test_same_site_three_times(n):
    asyncio.run(_sleepy())


@pytest.mark.filterwarnings("error::loopwarden.BlockingCallWarning")
def test_warning_as_error():
    asyncio.run(_sleepy())


@pytest.mark.asyncio
async def test_other_site():
    open(__file__).close()
"""


@pytest.fixture(scope="module")
def warn_run(tmp_path_factory: pytest.TempPathFactory) -> pytest.RunResult:
    root = make_project(
        tmp_path_factory.mktemp("warn_mode"),
        {"test_inner.py": WARN_TESTS},
        # The ini sets the mode; the command line does not.
        ini_extra="block_detect = warn\n",
    )
    (root / "blocker").write_text("a file, so blocker/ cannot be a directory")
    return run_pytest(root, "-rA", "--block-detect-report=blocker/findings.json")


def test_warn_mode_passes_and_warns(warn_run: pytest.RunResult) -> None:
    warn_run.stdout.fnmatch_lines(
        ["loopwarden: --block-detect=warn (from ini option block_detect)*"]
    )
    assert warn_run.parseoutcomes() == {"failed": 1, "passed": 4, "warnings": 4}
    warn_run.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "*BlockingCallWarning: Blocking call time.sleep()*",
        ]
    )


def test_unwritable_report_is_a_message_not_a_crash(warn_run: pytest.RunResult) -> None:
    warn_run.stdout.fnmatch_lines(["loopwarden: could not write the report: *blocker*"])
    assert "INTERNALERROR" not in warn_run.stdout.str()


def test_warning_filter_turns_it_into_an_error(warn_run: pytest.RunResult) -> None:
    warn_run.stdout.fnmatch_lines(
        ["FAILED test_inner.py::test_warning_as_error - loopwarden.errors.BlockingCall*"]
    )


def test_warn_mode_prints_each_finding_once(warn_run: pytest.RunResult) -> None:
    out = warn_run.stdout.str()
    # The open() finding is only ever a warning: its advice is printed once,
    # in the warnings summary, and the loopwarden section only counts.
    assert out.count("Run file I/O in a worker") == 1, out
    warn_run.stdout.fnmatch_lines(
        [
            "*BlockingCallWarning: Blocking call builtins.open()*",
            "*loopwarden: 5 blocking calls at 2 places to fix*",
            "(each one is listed once in the warnings summary above)",
        ]
    )
    assert "4x time.sleep()" not in out


def test_warn_mode_without_pytests_warnings_plugin_lists_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = make_project(
        tmp_path_factory.mktemp("warn_no_warnings"),
        {"test_inner.py": WARN_TESTS},
        ini_extra="block_detect = warn\n",
    )
    result = run_pytest(root, "-p", "no:warnings", "-p", "no:randomly")
    out = result.stdout.str()
    assert "warnings summary" not in out
    assert out.count("Run file I/O in a worker") == 1, out  # now in our summary, once
    result.stdout.fnmatch_lines(
        ["*4x time.sleep() at test_inner.py:* in _sleepy ?test code?, blocked *"]
    )


SCOPE_FILES = {
    "mylib/__init__.py": """
import os, time
from otherlib import wait_a_bit


def load():
    os.stat(__file__)


def uses_third_party():
    wait_a_bit()


def tolerated():
    time.sleep(0.001)
""",
    "otherlib/__init__.py": """
import time


def wait_a_bit():
    time.sleep(0.001)
""",
    "pyproject.toml": """
[tool.loopwarden]
allow = [{ target = "mylib:tolerated", reason = "measured: under 1 ms" }]
rules = [
    { target = "mylib:custom_blocking", suggestion = "Use mylib.acustom().", family = "database" },
]
""",
    "test_inner.py": """
import asyncio, os, time
import mylib, otherlib


async def in_loop(fn):
    fn()


def test_in_scope():
    asyncio.run(in_loop(mylib.load))


def test_through_scope_into_third_party():
    asyncio.run(in_loop(mylib.uses_third_party))


def test_out_of_scope_dropped():
    asyncio.run(in_loop(otherlib.wait_a_bit))
    asyncio.run(in_loop(lambda: os.stat(".")))


def test_allowance_from_pyproject():
    asyncio.run(in_loop(mylib.tolerated))


def test_rule_from_pyproject():
    asyncio.run(in_loop(mylib.custom_blocking))
""",
}
SCOPE_FILES["mylib/__init__.py"] += """

def custom_blocking():
    return 42
"""


@pytest.fixture(scope="module")
def record_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pytest.RunResult, dict[str, Any]]:
    root = make_project(
        tmp_path_factory.mktemp("record_scope"),
        SCOPE_FILES,
        # The command line wins over the ini.
        ini_extra="block_detect = raise\nblock_detect_scope = mylib\n",
    )
    report = root / "findings.json"
    result = run_pytest(root, "-rA", "--block-detect=record", f"--block-detect-report={report}")
    return result, read_report(report)


def test_record_mode_passes_with_summary(
    record_run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, _ = record_run
    assert result.parseoutcomes() == {"passed": 5}
    result.stdout.fnmatch_lines(
        [
            "loopwarden: --block-detect=record (from command line), "
            "scope mylib (from ini option block_detect_scope)*",
            "loopwarden: 1 allowance(s), 1 rule(s) from *pyproject.toml",
            "*loopwarden: 3 blocking calls at 3 places to fix*",
        ]
    )


def test_scope_keeps_only_stacks_through_the_scope(
    record_run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    _, report = record_run
    assert findings_by_test(report) == {
        "test_in_scope": ["call:os.stat"],
        "test_through_scope_into_third_party": ["call:time.sleep"],
        "test_rule_from_pyproject": ["call:mylib.custom_blocking"],
    }
    origins = {f["nodeid"].split("::")[-1]: f["origin"] for f in report["findings"]}
    assert origins["test_in_scope"] == "your code"
    assert origins["test_through_scope_into_third_party"] == "third-party code"
    assert report["settings"]["scope"] == ["mylib"]
