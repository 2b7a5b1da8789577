"""The plugin and bad or mistyped configuration: a pytest usage error, never a test error."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import make_project, run_pytest

from pytest_loopwarden import RUNTIME_KEY


@pytest.fixture(autouse=True)
def _quiet_ini(pytester: pytest.Pytester, offscreen: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest.ini, not tox.ini: pytest reads its ini before pyproject.toml then.
    pytester.makefile(".ini", pytest="[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    monkeypatch.delenv("LOOPWARDEN_ALLOW", raising=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"tool = 5\n", "'tool' must be a table"),
        (b'[tool]\nloopwarden = "warn"\n', "'tool.loopwarden' must be a table"),
        (b'[tool.loopwarden]\nmode = "warn"\n# caf\xe9\n', "not valid UTF-8"),
    ],
    ids=["tool-is-a-number", "table-is-a-string", "not-utf8"],
)
def test_bad_pyproject_is_a_usage_error(
    pytester: pytest.Pytester, content: bytes, message: str
) -> None:
    (pytester.path / "pyproject.toml").write_bytes(content)
    # pytest parses pyproject.toml itself while looking for its ini file, and
    # fails on `tool = 5` and on non-UTF-8 text with its own traceback; -c (an explicit ini file)
    # skips that search, and then the file reaches the plugin.
    with pytest.raises(pytest.UsageError, match=message):
        pytester.parseconfigure(
            "-c", "pytest.ini", "--rootdir", str(pytester.path), "--block-detect"
        )


def test_fractional_stall_threshold_is_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.loopwarden]\nstall_ms = 12.5\n")
    config = pytester.parseconfigure("--block-detect")
    settings = config.stash[RUNTIME_KEY].settings
    assert settings.stall_ms == 12.5
    assert "stall watchdog 12.5 ms" in "\n".join(settings.header())


def test_stall_ms_below_minimum_stops_the_run_once(tmp_path: Path) -> None:
    # Before: 0.4 rounded to 0 and every test errored with a ConfigError traceback.
    project = make_project(
        tmp_path,
        {
            "pyproject.toml": "[tool.loopwarden]\nstall_ms = 0.4\n",
            "test_a.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n",
        },
    )
    result = run_pytest(project, "--block-detect")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stall_ms 0.4: the stall threshold must be at least 10 ms*"])
    assert "Traceback" not in result.stderr.str()


def test_marker_with_an_unknown_family_is_a_usage_error(tmp_path: Path) -> None:
    inner = """
import pytest

@pytest.mark.allow_blocking("filesytem", reason="fixture files")
def test_reads():
    pass
"""
    result = run_pytest(make_project(tmp_path, {"test_inner.py": inner}), "--block-detect")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_inner.py::test_reads*unknown primitive or family 'filesytem'*did you mean*"]
    )


def test_marker_with_an_unknown_family_under_xdist_errors_that_test(tmp_path: Path) -> None:
    # On an xdist worker a usage error would be the controller's internal error.
    inner = """
import pytest

@pytest.mark.allow_blocking("filesytem", reason="fixture files")
def test_reads():
    pass

def test_other():
    pass
"""
    project = make_project(tmp_path, {"test_inner.py": inner})
    result = run_pytest(project, "--block-detect", "-n", "2", "-p", "no:randomly")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*unknown primitive or family 'filesytem'*"])


def test_marker_with_a_mistyped_mode_names_the_closest(tmp_path: Path) -> None:
    inner = """
import pytest

@pytest.mark.block_detect("wran")
def test_one():
    pass
"""
    result = run_pytest(make_project(tmp_path, {"test_inner.py": inner}), "--block-detect")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*block_detect('wran'): invalid mode; did you mean 'warn'*"])


_ALLOW_INNER = {
    "helpers.py": """
import time


def load_fixture_data():
    time.sleep(0.001)


def other():
    time.sleep(0.001)
""",
    "test_inner.py": """
import asyncio

import helpers


def test_allowed_by_env():
    async def main():
        helpers.load_fixture_data()
    asyncio.run(main())


def test_not_allowed():
    async def main():
        helpers.other()
    asyncio.run(main())
""",
}


def test_loopwarden_allow_applies_under_block_detect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPWARDEN_ALLOW", "helpers:load_fixture_data=test data is tiny")
    result = run_pytest(make_project(tmp_path, _ALLOW_INNER), "--block-detect", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*1 allowance(s) from LOOPWARDEN_ALLOW*"])
    result.stdout.fnmatch_lines(["FAILED test_inner.py::test_not_allowed*"])


def test_bad_loopwarden_allow_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPWARDEN_ALLOW", "helpers:load fixture")
    with pytest.raises(pytest.UsageError, match=r"LOOPWARDEN_ALLOW: .*not a qualified name"):
        pytester.parseconfigure("--block-detect")
