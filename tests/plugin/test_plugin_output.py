"""What the plugin prints: places to fix in order, library frames, stalls, a capped summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plugin_helpers import make_project, run_pytest, section

#: A third-party package, installed in a site-packages directory outside the project.
LIBRARY = """
import time


def nap():
    time.sleep(0.001)
"""

#: 12 lines that block: 12 places to fix, line n blocking n times.
PLACES = "\n".join("time.sleep(0)" for _ in range(12))

INNER = """
import asyncio, pathlib, time

import lw_thirdparty

PLACES = pathlib.Path(__file__).with_name("places.py")


def crunch(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # CPU work: only the watchdog sees it
        pass


def test_in_order():
    async def main():
        open(__file__).read()  # first: one statement, two primitives
        for _ in range(3):
            time.sleep(0.001)  # then three times on this line

    asyncio.run(main())


def test_library():
    async def main():
        lw_thirdparty.nap()  # the place to fix

    asyncio.run(main())


def test_stall():
    async def main():
        crunch(0.3)
        await asyncio.sleep(0.05)

    asyncio.run(main())


def test_many_places():
    codes = [compile("\\n" * n + "time.sleep(0.0001)", str(PLACES), "exec") for n in range(12)]

    async def main():
        for n, code in enumerate(codes):
            for _ in range(n + 1):
                exec(code, {"time": time})

    asyncio.run(main())
"""

CONFTEST = """
import sys

sys.path.insert(0, {site!r})
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("output")
    site = base / "elsewhere" / "lib" / "site-packages"
    (site / "lw_thirdparty").mkdir(parents=True)
    (site / "lw_thirdparty" / "__init__.py").write_text(LIBRARY, encoding="utf-8")
    (base / "project").mkdir()
    return make_project(
        base / "project",
        {
            "test_inner.py": INNER,
            "places.py": PLACES,
            "conftest.py": CONFTEST.format(site=str(site)),
        },
    )


@pytest.fixture(scope="module")
def run(project: Path) -> pytest.RunResult:
    return run_pytest(project, "--block-detect", "--block-detect-stall-ms=100", "-p", "no:randomly")


def _summary(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "loopwarden:" in line and "to fix ==" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start:end]


def test_a_phase_lists_places_in_the_order_they_happened(run: pytest.RunResult) -> None:
    text = section(run, "test_in_order")
    assert "5 blocking calls on an event-loop thread during CALL" in text
    assert "at 2 places to fix, in the order they happened:" in text
    first = text.index("1) builtins.open() + io.TextIOWrapper.read(), 2 calls [test code]")
    second = text.index("2) time.sleep(), 3 calls [test code]")
    assert first < second


def test_the_footer_is_said_once_per_run(run: pytest.RunResult) -> None:
    out = run.stdout.str()
    assert out.count("The calls were recorded even if") == 0
    assert out.count("the calls were recorded even if an exception was swallowed") == 1
    assert "the calls were recorded" in _summary(run)[-1]


def test_a_library_finding_names_the_users_line(run: pytest.RunResult) -> None:
    text = section(run, "test_library")
    assert re.search(r"at .*test_inner.py:\d+ in (test_library.<locals>.)?main\n", text)
    assert "lw_thirdparty.nap()  # the place to fix" in text
    assert re.search(
        r"inside library code at .*site-packages/lw_thirdparty/__init__.py:6 in nap", text
    )
    assert 'loopwarden.allow("lw_thirdparty", reason="...")' in text


def test_a_stall_shows_its_duration_and_culprit_line(run: pytest.RunResult) -> None:
    text = section(run, "test_stall")
    assert re.search(r"1\) event loop stalled for \d+ ms \[test code\]", text), text
    assert "while time.perf_counter() < end:  # CPU work" in text
    summary = "\n".join(_summary(run))
    assert re.search(r"1x event loop stalled for \d+ ms at test_inner.py:\d+ in crunch", summary)


def test_no_scope_no_scope_label(run: pytest.RunResult) -> None:
    out = run.stdout.str()
    assert "in-scope" not in out
    assert "[your code]" not in out


def _blocked_ms(line: str) -> float | None:
    """The ", blocked 12.3 ms" / ", blocked 1.25 s" at the end of a summary entry."""
    found = re.search(r", blocked ([\d.]+) (ms|s)$", line)
    if found is None:
        return None
    return float(found.group(1)) * (1000.0 if found.group(2) == "s" else 1.0)


def test_the_summary_is_capped_largest_first(run: pytest.RunResult) -> None:
    summary = _summary(run)
    assert "loopwarden: 84 blocking calls and 1 stall at 16 places to fix" in summary[0]
    entries = [line for line in summary if re.match(r"\s*\d+\. ", line)]
    assert len(entries) == 10
    assert entries[0].startswith(" 1. 1x event loop stalled")  # the one measured: 300 ms
    # Then largest first by time blocked: every call is timed (issue 15.4).
    blocked = [_blocked_ms(line) for line in entries[1:]]
    assert all(b is not None for b in blocked), entries
    assert blocked == sorted(blocked, reverse=True), entries
    assert any(
        re.fullmatch(
            r"\.\.\. and 6 more places to fix with \d+ findings \(-v shows more, -vv all\)", line
        )
        for line in summary
    ), summary
    assert "Every finding with its stack: --block-detect-report=findings.json" in summary


def test_a_phase_with_many_places_is_capped_too(run: pytest.RunResult) -> None:
    text = section(run, "test_many_places")
    assert "78 blocking calls on an event-loop thread during CALL" in text
    assert "at 12 places to fix, in the order they happened:" in text
    assert "10) time.sleep(), 10 calls" in text and "11) " not in text
    assert "... and 2 more places to fix with 23 findings in this phase" in text


def test_quiet_shows_fewer_places_in_one_line_each(project: Path) -> None:
    result = run_pytest(project, "--block-detect", "-q", "-p", "no:randomly")
    summary = _summary(result)
    entries = [line for line in summary if re.match(r"\s*\d+\. ", line)]
    assert len(entries) == 5
    assert not any(line.startswith("    tests:") for line in summary)


def test_very_verbose_shows_every_place(project: Path) -> None:
    report = project / "findings.json"
    result = run_pytest(
        project, "--block-detect", "-vv", "-p", "no:randomly", f"--block-detect-report={report}"
    )
    summary = _summary(result)
    entries = [line for line in summary if re.match(r"\s*\d+\. ", line)]
    assert len(entries) == 15  # no watchdog in this run: no stall
    assert f"Full report: {report}" in summary


SCOPED = """
import asyncio, time

import mypkg


def helper():
    time.sleep(0.001)  # test code, called back by mypkg


def test_through_the_scope():
    async def main():
        mypkg.run(helper)

    asyncio.run(main())


def test_the_scope_blocks():
    async def main():
        mypkg.load()

    asyncio.run(main())
"""


def test_scope_label_says_why_a_finding_was_kept(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        {
            "test_scoped.py": SCOPED,
            "mypkg/__init__.py": (
                "import time\n\n\ndef run(callback):\n    return callback()\n\n\n"
                "def load():\n    time.sleep(0.001)\n"
            ),
        },
    )
    result = run_pytest(root, "--block-detect", "--block-detect-scope=mypkg")
    text = section(result, "test_through_the_scope")
    assert "time.sleep() [test code; kept: stack passes through mypkg:run]" in text, text
    # With a scope, the place to fix is the scope's own line.
    assert re.search(r"at .*mypkg/__init__.py:5 in run", text)
    own = section(result, "test_the_scope_blocks")
    assert "time.sleep() [kept: stack passes through mypkg:load]" in own, own


ASYNC_FIXTURE_CONFTEST = """
import time

import pytest_asyncio


@pytest_asyncio.fixture
async def blocking_fixture():
    time.sleep(0.001)
    yield 1
"""

ASYNC_FIXTURE_TEST = """
import pytest


@pytest.mark.asyncio
async def test_uses_it(blocking_fixture):
    pass
"""


def test_raise_mode_traceback_starts_in_the_users_fixture(tmp_path: Path) -> None:
    root = make_project(
        tmp_path, {"conftest.py": ASYNC_FIXTURE_CONFTEST, "test_fx.py": ASYNC_FIXTURE_TEST}
    )
    result = run_pytest(root, "--block-detect=raise")
    text = section(result, "test_uses_it")
    assert "conftest.py:9: BlockingCallError" in text, text
    traceback = text.split("Captured loopwarden setup")[0]
    machinery_files = ("pytest_loopwarden/", "pytest_asyncio/", "pytestqt/", "asyncio/runners.py")
    for machinery in machinery_files:
        assert machinery not in traceback, traceback


#: Ordinary errors of patched functions, off the loop and on it.
ERRORS = """
import asyncio, os, pathlib, threading


def test_stat_off_the_loop():
    os.stat("/nonexistent/lw")


def test_path_off_the_loop():
    pathlib.Path("/nonexistent/lw").read_text()


def test_open_in_an_executor():
    async def main():
        await asyncio.get_running_loop().run_in_executor(None, open, "/nonexistent/lw")

    asyncio.run(main())


def test_lock_release_off_the_loop():
    threading.Lock().release()


def test_call_soon_on_a_closed_loop():
    loop = asyncio.new_event_loop()
    loop.close()
    loop.call_soon(print)
"""


@pytest.mark.parametrize("flag", ["--block-detect", "--block-detect=record"])
def test_an_error_of_a_patched_function_names_the_callers_line(tmp_path: Path, flag: str) -> None:
    # A patched function's own error (a missing file) named loopwarden's
    # wrapper as its crash line: the wrapper returned before it set
    # __tracebackhide__ on the way that does not check anything.
    make_project(tmp_path, {"test_errors.py": ERRORS})
    result = run_pytest(tmp_path, flag, "-p", "no:randomly")
    result.assert_outcomes(failed=5)
    output = result.stdout.str()
    assert "loopwarden" not in "\n".join(
        line for line in result.outlines if re.match(r"^\S+\.py:\d+: \w+", line)
    ), output
    for test in ("test_stat_off_the_loop", "test_path_off_the_loop"):
        assert "/site-packages/loopwarden/" not in section(result, test)
        assert "src/loopwarden/" not in section(result, test)


#: pytest's py.path (the tmpdir fixture) doing file I/O on the loop and off it.
PY_PATH = """
import asyncio


def test_tmpdir_on_the_loop(tmpdir):
    async def main():
        tmpdir.join("a.bin").write_binary(b"x" * 1000)  # the place to fix

    asyncio.run(main())


def test_tmpdir_off_the_loop(tmpdir):
    tmpdir.join("a.bin").write_binary(b"x" * 1000)
"""


def test_py_path_io_is_the_tests_own(tmp_path: Path) -> None:
    # py.path lives in pytest (_pytest._py.path), whose frames excuse their
    # own I/O as a tool's: the tmpdir fixture's writes on the loop went unseen.
    make_project(tmp_path, {"test_py_path.py": PY_PATH})
    result = run_pytest(tmp_path, "--block-detect", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    failure = section(result, "test_tmpdir_on_the_loop")
    assert "test_py_path.py:7" in failure, failure
    assert "builtins.open" in failure or "open()" in failure, failure
