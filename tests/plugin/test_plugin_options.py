"""Options, precedence and bad values (in-process: nothing is patched while parsing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import make_project, run_pytest

from loopwarden.registry import registry
from pytest_loopwarden import RUNTIME_KEY
from pytest_loopwarden.options import split_bare_flag


def write_ini(pytester: pytest.Pytester, extra: str) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n" + extra)


@pytest.fixture(autouse=True)
def _quiet_ini(pytester: pytest.Pytester, offscreen: None) -> None:
    write_ini(pytester, "")


def settings_of(pytester: pytest.Pytester, *args: str):  # type: ignore[no-untyped-def]
    config = pytester.parseconfigure(*args)
    plugin = config.stash.get(RUNTIME_KEY, None)
    return None if plugin is None else plugin.settings


@pytest.mark.parametrize(
    ("args", "ini", "pyproject", "mode", "source"),
    [
        ((), "", "", None, None),
        (("--block-detect",), "", "", "fail", "command line"),
        (("--block-detect=raise",), "warn", "", "raise", "command line"),
        ((), "warn", "record", "warn", "ini option block_detect"),
        ((), "", "record", "record", "[tool.loopwarden] mode"),
        (("--block-detect=off",), "fail", "raise", None, None),
        ((), "off", "raise", None, None),
        (("--block-detect", "RECORD"), "", "", "record", "command line"),
    ],
)
def test_precedence_cli_ini_pyproject_default(
    pytester: pytest.Pytester,
    args: tuple[str, ...],
    ini: str,
    pyproject: str,
    mode: str | None,
    source: str | None,
) -> None:
    write_ini(pytester, f"block_detect = {ini}\n" if ini else "")
    if pyproject:
        pytester.makepyprojecttoml(f'[tool.loopwarden]\nmode = "{pyproject}"\n')
    settings = settings_of(pytester, *args)
    if mode is None:
        assert settings is None  # off: the per-test machinery is not even registered
        return
    assert settings is not None
    assert settings.mode == mode
    assert source is not None and source in settings.mode_source
    assert settings.header()[0].startswith(f"loopwarden: --block-detect={mode} (from ")


@pytest.mark.parametrize(
    ("args", "ini", "pyproject", "message"),
    [
        (("--block-detect=fial",), "", "", "valid modes: fail, raise, warn, record, off"),
        ((), "sometimes", "", "valid modes: fail, raise, warn, record, off"),
        ((), "", 'mode = "loud"', "valid values: raise, warn, record, off, fail"),
        (("--block-detect", "--block-detect-scope=my-pkg"), "", "", "expected package names"),
        (("--block-detect", "--block-detect-stall-ms=soon"), "", "", "milliseconds >= 10"),
        (("--block-detect", "--block-detect-stall-ms=0.4"), "", "", "at least 10 ms"),
        (("--block-detect",), "", "stall_ms = 0.4", "stall_ms 0.4: the stall threshold must"),
        (("--block-detect",), "", 'allow = ["mylib:f x = why"]', "is not a qualified name"),
        (
            ("--block-detect",),
            "",
            'rules = [{ target = "json:JSONDecoder", suggestion = "x" }]',
            "is a class",
        ),
        (("--block-detect",), "", 'mode = "recrod"', "did you mean 'record'"),
        (("--block-detect",), "", "stall_ms = -5", "stall_ms -5; valid values: a number"),
        (("--block-detect",), "", 'allow = [{ target = "mylib:f" }]', "needs a reason"),
        (("--block-detect",), "", 'allow = [{ target = "mylib:f", why = "x" }]', "valid keys"),
        (("--block-detect",), "", 'rules = [{ target = "mylib:f" }]', "needs a suggestion"),
        ((), "", "mode = 3", "mode 3; valid values: raise"),
    ],
)
def test_bad_values_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, pyproject: str, message: str
) -> None:
    write_ini(pytester, f"block_detect = {ini}\n" if ini else "")
    if pyproject:
        pytester.makepyprojecttoml(f"[tool.loopwarden]\n{pyproject}\n")
    with pytest.raises(pytest.UsageError, match=message.replace("[", r"\[")):
        pytester.parseconfigure(*args)


def test_bad_value_from_the_command_line_exits_with_usage_error(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--block-detect=loud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*invalid --block-detect mode 'loud'*valid modes: fail, raise, warn, record, off*"]
    )


def test_scope_report_and_stall_settings(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "block_detect_scope = inipkg\n")
    settings = settings_of(
        pytester,
        "--block-detect=warn",
        "--block-detect-scope=mypkg, other.sub",
        "--block-detect-report=out/findings.json",
        "--block-detect-stall-ms=250",
    )
    assert settings is not None
    assert settings.scope == ("mypkg", "other.sub")
    assert settings.report == pytester.path / "out" / "findings.json"
    assert settings.stall_ms == 250
    header = "\n".join(settings.header())
    assert "scope mypkg,other.sub (from command line)" in header
    assert "stall watchdog 250 ms (from command line)" in header


def test_bare_flag_before_a_path() -> None:
    args = ["--block-detect", "no_such_dir_xyz", "-x"]
    split_bare_flag(args)
    # No such path: left as the value, for the mode check to reject.
    assert args == ["--block-detect", "no_such_dir_xyz", "-x"]
    args = ["--block-detect", ".", "--block-detect", "warn"]
    split_bare_flag(args)
    assert args == ["--block-detect=fail", ".", "--block-detect", "warn"]
    args = ["--block-detect", "raise"]
    split_bare_flag(args)
    assert args == ["--block-detect", "raise"]


FLAG_OFF_TESTS = """
import asyncio, time
import pytest


async def blocks():
    time.sleep(0.001)


@pytest.mark.allow_blocking("time.sleep", reason="registered marker")
@pytest.mark.block_detect("raise")
def test_blocking_is_not_detected():
    asyncio.run(blocks())


def test_fixture_still_works_when_off(loopwarden):
    asyncio.run(blocks())
    assert [f.primitive for f in loopwarden.findings] == ["time.sleep"]
"""


def test_flag_off_has_no_effect(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_off=FLAG_OFF_TESTS)
    assert not registry.installed
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert not any(line.startswith("loopwarden:") for line in result.outlines)
    assert not registry.installed
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.allow_blocking(*primitives, reason)*"])
    markers.stdout.fnmatch_lines(["@pytest.mark.block_detect(mode)*"])


def test_off_registers_no_per_test_hooks(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    assert config.pluginmanager.get_plugin("loopwarden-runtime") is None
    assert RUNTIME_KEY not in config.stash
    config = pytester.parseconfigure("--block-detect")
    assert config.pluginmanager.get_plugin("loopwarden-runtime") is not None


_CORE_NOT_LOADED = """
import asyncio, sys, time

CORE = (
    "engine", "registry", "patching", "warden", "watchdog", "families", "blocking", "report", "api"
)


def test_nothing_loaded_nothing_patched():
    async def main():
        time.sleep(0.001)
    asyncio.run(main())
    loaded = [m for m in CORE if f"loopwarden.{m}" in sys.modules]
    assert loaded == []
    assert not hasattr(time.sleep, "__loopwarden_rule__")
"""


@pytest.mark.parametrize(
    "pyproject",
    [
        "",
        # The one configuration reader reads the table without loading the core.
        '[tool.loopwarden]\nstall_ms = 150\nallow = ["json:loads = parsing is fast"]\n',
    ],
    ids=["no-table", "with-table"],
)
def test_flag_off_loads_no_patching_core(tmp_path: Path, pyproject: str) -> None:
    files = {"test_inner.py": _CORE_NOT_LOADED}
    if pyproject:
        files["pyproject.toml"] = pyproject
    result = run_pytest(make_project(tmp_path, files), "--strict-markers")
    result.assert_outcomes(passed=1)
