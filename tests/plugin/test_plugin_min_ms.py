"""``--block-detect-min-ms``: fail only on calls that blocked at least that long (issue 15.4).

The short call sleeps 1 ms under a threshold of 60 s, so no machine load can
push it over; the long call sleeps past a 20 ms threshold. Only lower bounds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import make_project, read_report, run_pytest, section

TESTS = """
import asyncio
import time

import pytest


@pytest.mark.asyncio
async def test_short():
    time.sleep(0.001)


@pytest.mark.asyncio
async def test_long():
    time.sleep(0.03)
    print("the call ran")


@pytest.mark.asyncio
async def test_both():
    time.sleep(0.001)
    time.sleep(0.03)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("min_ms"), {"test_durations_inner.py": TESTS})


def test_without_a_threshold_every_blocking_call_fails(project: Path) -> None:
    result = run_pytest(project, "--block-detect", "-p", "no:randomly")
    result.assert_outcomes(failed=3)


def test_a_huge_threshold_fails_nothing_but_lists_the_calls(project: Path) -> None:
    report = project / "huge.json"
    result = run_pytest(
        project, "--block-detect", "--block-detect-min-ms=60000", f"--block-detect-report={report}"
    )
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "only calls that blocked >= 60000 ms fail a test (from command line)" in out
    assert "4 of these call(s) blocked less than --block-detect-min-ms=60000 ms" in out
    data = read_report(report)
    assert data["settings"]["min_ms"] == 60000
    assert len(data["findings"]) == 4
    assert all(f["duration_ms"] >= 1.0 for f in data["findings"])
    assert all(f["details"]["duration_ms"] == f["duration_ms"] for f in data["findings"])
    assert all(g["total_ms"] >= 1.0 for g in data["groups"])


def test_only_calls_over_the_threshold_fail(project: Path) -> None:
    result = run_pytest(project, "--block-detect", "--block-detect-min-ms=20", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    both = section(result, "test_both")
    assert "1 blocking call on an event-loop thread" in both  # the 1 ms call is left out
    assert "blocked " in both and " ms" in both


def test_raise_mode_with_a_threshold_runs_the_call_and_judges_afterwards(project: Path) -> None:
    result = run_pytest(
        project, "--block-detect=raise", "--block-detect-min-ms=20", "-s", "-k", "long"
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the call ran" in out  # no BlockingCallError at the call
    assert "raise mode runs each call and judges it afterwards" in out
    assert "BlockingCallError" not in section(result, "test_long")


def test_ini_option(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"test_inner.py": TESTS}, "block_detect_min_ms = 60000\n")
    result = run_pytest(root, "--block-detect")
    result.assert_outcomes(passed=3)
    assert "(from ini option block_detect_min_ms)" in result.stdout.str()


def test_pyproject_min_ms(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"test_inner.py": TESTS})
    (root / "pyproject.toml").write_text("[tool.loopwarden]\nmin_ms = 20\n", encoding="utf-8")
    result = run_pytest(root, "--block-detect", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    assert "[tool.loopwarden] min_ms)" in result.stdout.str()


def test_command_line_wins_over_pyproject(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"test_inner.py": TESTS})
    (root / "pyproject.toml").write_text("[tool.loopwarden]\nmin_ms = 20\n", encoding="utf-8")
    result = run_pytest(root, "--block-detect", "--block-detect-min-ms=0")
    result.assert_outcomes(failed=3)


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_bad_values_name_the_valid_ones(tmp_path: Path, value: str) -> None:
    root = make_project(tmp_path, {"test_inner.py": TESTS})
    result = run_pytest(root, "--block-detect", f"--block-detect-min-ms={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"invalid --block-detect-min-ms {value!r}" in result.stderr.str()
    assert "milliseconds >= 0" in result.stderr.str()


def test_bad_pyproject_value(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"test_inner.py": TESTS})
    (root / "pyproject.toml").write_text('[tool.loopwarden]\nmin_ms = "x"\n', encoding="utf-8")
    result = run_pytest(root, "--block-detect")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "min_ms 'x'; valid values: a number of milliseconds >= 0" in result.stderr.str()
