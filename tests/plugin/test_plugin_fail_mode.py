"""`--block-detect` (fail mode): per-phase failures, markers, the fixture, the JSON report.

One subprocess run covers many tests of the inner project; each outer test
checks one aspect of that run's output.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from plugin_helpers import findings_by_test, make_project, read_report, run_pytest, section

INNER_TESTS = """
import asyncio, os, time
import pytest
import pytest_asyncio


def helper_that_blocks():
    time.sleep(0.001)


async def _sleepy():
    time.sleep(0.001)


def test_sync_sleep_off_loop_is_fine():
    time.sleep(0.001)


def test_worker_thread_is_fine():
    async def main():
        await asyncio.to_thread(time.sleep, 0.001)
        await asyncio.sleep(0)
    asyncio.run(main())


@pytest.mark.asyncio
async def test_call_blocks():
    time.sleep(0.001)


@pytest_asyncio.fixture
async def blocks_in_setup():
    time.sleep(0.001)
    yield


@pytest_asyncio.fixture
async def blocks_in_teardown():
    yield
    os.stat(".")


@pytest.mark.asyncio
async def test_setup_blocks(blocks_in_setup):
    pass


@pytest.mark.asyncio
async def test_teardown_blocks(blocks_in_teardown):
    pass


def test_error_and_finding():
    async def main():
        time.sleep(0.001)
        raise ValueError("the test's own error")
    asyncio.run(main())


@pytest.mark.allow_blocking(reason="legacy code, ported next sprint")
def test_allowed_whole_test():
    asyncio.run(_sleepy())


@pytest.mark.allow_blocking("time.sleep", reason="sleep is fine here, stat is not")
def test_allowed_some_primitives():
    async def main():
        time.sleep(0.001)
        os.stat(".")
    asyncio.run(main())


@pytest.mark.allow_blocking("time.sleep")
def test_allow_without_reason():
    pass


@pytest.mark.block_detect("warn")
def test_marker_warn(recwarn):
    asyncio.run(_sleepy())
    assert any("time.sleep" in str(w.message) for w in recwarn.list)


@pytest.mark.block_detect("off")
def test_marker_off():
    asyncio.run(_sleepy())


@pytest.mark.block_detect("sometimes")
def test_marker_bad_mode():
    pass


def test_fixture_and_expect(loopwarden):
    async def main():
        with loopwarden.expect_blocking("time.sleep"):
            time.sleep(0.001)
    asyncio.run(main())
    assert loopwarden.findings == []
    assert loopwarden.active


def test_fixture_allow(loopwarden):
    loopwarden.allow("test_inner:helper_that_blocks", reason="measured: 1 ms")
    async def main():
        helper_that_blocks()
    asyncio.run(main())


def test_fixture_sees_findings(loopwarden):
    asyncio.run(_sleepy())
    assert [f.primitive for f in loopwarden.findings] == ["time.sleep"]
    loopwarden.clear()  # seen and accepted: the test passes


def custom_call():
    return 1


def test_fixture_add_rule(loopwarden):
    from loopwarden import Rule

    loopwarden.add_rule(
        Rule(target="test_inner:custom_call", family="custom", suggestion="Use acustom_call().")
    )

    async def main():
        assert custom_call() == 1
    asyncio.run(main())
    assert [f.primitive for f in loopwarden.findings] == ["test_inner.custom_call"]
    loopwarden.clear()


PATCHED = []


@pytest.mark.parametrize("n", range(2))
def test_patches_stay_installed_between_tests(n):
    # Installed once for the session: the same wrapper in every test.
    assert hasattr(time.sleep, "__loopwarden_rule__")
    PATCHED.append(time.sleep)
    assert PATCHED[0] is PATCHED[-1]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run the inner project once for the whole module."""
    root = make_project(tmp_path_factory.mktemp("fail_mode"), {"test_inner.py": INNER_TESTS})
    report = root / "out" / "findings.json"
    result = run_pytest(
        root,
        "--strict-markers",
        "-rA",
        # Bare flag followed by a path: the path is not taken as the mode.
        "--block-detect",
        "test_inner.py",
        f"--block-detect-report={report}",
    )
    return result, read_report(report)


def test_outcomes_and_header(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, _ = run
    result.stdout.fnmatch_lines(["loopwarden: --block-detect=fail (from command line)*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 3, result.outlines[-30:]
    assert outcomes.get("errors") == 4
    assert outcomes.get("passed") == 12


@pytest.mark.parametrize(
    ("test", "status"),
    [
        ("test_sync_sleep_off_loop_is_fine", "PASSED"),
        ("test_worker_thread_is_fine", "PASSED"),
        ("test_call_blocks", "FAILED"),
        ("test_setup_blocks", "ERROR"),
        ("test_teardown_blocks", "ERROR"),
        ("test_error_and_finding", "FAILED"),
        ("test_allowed_whole_test", "PASSED"),
        ("test_allowed_some_primitives", "FAILED"),
        ("test_allow_without_reason", "ERROR"),
        ("test_marker_warn", "PASSED"),
        ("test_marker_off", "PASSED"),
        ("test_marker_bad_mode", "ERROR"),
        ("test_fixture_and_expect", "PASSED"),
        ("test_fixture_allow", "PASSED"),
        ("test_fixture_sees_findings", "PASSED"),
        ("test_fixture_add_rule", "PASSED"),
        ("test_patches_stay_installed_between_tests[1]", "PASSED"),
    ],
)
def test_status(run: tuple[pytest.RunResult, dict[str, Any]], test: str, status: str) -> None:
    result, _ = run
    # -rA: one short summary line per test phase outcome.
    summary = [
        line for line in result.outlines if line.endswith(f"::{test}") or f"::{test} " in line
    ]
    assert any(line.startswith(status) for line in summary), summary
    if status == "PASSED":
        assert not any(line.startswith(("FAILED", "ERROR")) for line in summary), summary


def test_call_failure_lists_the_finding(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, _ = run
    text = section(result, "test_call_blocks")
    assert "1 blocking call on an event-loop thread during CALL (--block-detect=fail)" in text
    assert "at 1 place to fix, in the order they happened:" in text
    assert "time.sleep() [test code] on thread 'MainThread'" in text
    assert re.search(r"at .*test_inner.py:\d+ in test_call_blocks", text)
    assert "suggestion: Use `await asyncio.sleep(seconds)`" in text


def test_setup_and_teardown_phases(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, report = run
    assert "during SETUP" in section(result, "test_setup_blocks")
    teardown = section(result, "test_teardown_blocks")
    assert "during TEARDOWN" in teardown
    assert "os.stat() [test code]" in teardown
    found = findings_by_test(report)
    assert found["test_setup_blocks"] == ["setup:time.sleep"]
    assert found["test_teardown_blocks"] == ["teardown:os.stat"]


def test_own_error_is_kept_with_findings_beside_it(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, _ = run
    text = section(result, "test_error_and_finding")
    assert "ValueError: the test's own error" in text
    assert "Captured loopwarden call" in text
    assert "time.sleep() [test code]" in text


def test_partial_allowance_keeps_other_primitives(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    result, report = run
    assert findings_by_test(report)["test_allowed_some_primitives"] == ["call:os.stat"]
    assert "time.sleep" not in section(result, "test_allowed_some_primitives")


def test_marker_misuse_names_the_fix(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, _ = run
    assert "needs reason='...'" in section(result, "test_allow_without_reason")
    bad = section(result, "test_marker_bad_mode")
    assert "invalid mode; valid modes: fail, raise, warn, record, off" in bad


def test_allowed_off_and_expected_tests_leave_no_findings(
    run: tuple[pytest.RunResult, dict[str, Any]],
) -> None:
    _, report = run
    found = findings_by_test(report)
    for quiet in (
        "test_sync_sleep_off_loop_is_fine",
        "test_worker_thread_is_fine",
        "test_allowed_whole_test",
        "test_marker_off",
        "test_fixture_and_expect",
        "test_fixture_allow",
    ):
        assert quiet not in found
    # warn mode for one test: a warning, and the finding is still reported.
    assert found["test_marker_warn"] == ["call:time.sleep"]


def test_json_report(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, report = run
    assert (report["schema"], report["version"]) == ("loopwarden-report", 1)
    assert report["settings"]["mode"] == "fail"
    assert report["summary"]["total"] == len(report["findings"]) == 6
    assert sum(group["count"] for group in report["groups"]) == 6
    assert all(group["tests"] for group in report["groups"])
    first = report["findings"][0]
    assert {"primitive", "caller", "stack", "suggestion", "nodeid", "phase", "origin"} <= set(first)
    assert {f["origin"] for f in report["findings"]} == {"test code"}
    # The findings round-trip into loopwarden.Finding.
    from loopwarden import Finding

    assert Finding.from_dict(first).primitive == first["primitive"]
    result.stdout.fnmatch_lines(["*loopwarden: 6 blocking calls at * places to fix*"])
