"""activate_from_env(): valid, invalid and off values, pyproject defaults, the report at exit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwarden
from loopwarden import env as env_module
from loopwarden import env_report
from loopwarden.config import Settings
from loopwarden.registry import registry
from reports_helpers import run_python


@pytest.fixture(autouse=True)
def _switched_off() -> Iterator[None]:
    # Compare with the state before the test, not with "unpatched": a pytest
    # plugin may keep the patches installed for the whole session.
    sleep_before, installed_before = time.sleep, registry.installed
    yield
    loopwarden.deactivate()
    env_report.disarm()  # no report written when pytest itself exits
    assert time.sleep is sleep_before
    assert registry.installed is installed_before


def _nothing_switched_on(sleep_before: object, installed_before: bool) -> None:
    assert registry.installed is installed_before
    assert time.sleep is sleep_before
    assert loopwarden.current_warden() is None


async def _sleep_on_the_loop() -> None:
    time.sleep(0.001)


def _allowed_sleeper() -> None:
    time.sleep(0.001)


async def _sleep_in_allowed_function() -> None:
    _allowed_sleeper()


@pytest.mark.parametrize("value", [None, "", "off", " OFF "])
def test_unset_or_off_patches_nothing(value: str | None, tmp_path: Path) -> None:
    environ = {} if value is None else {"LOOPWARDEN": value}
    # Even a broken pyproject is not read when detection is off.
    (tmp_path / "pyproject.toml").write_text("[tool.loopwarden]\nmode = 'loud'\n")
    sleep_before, installed_before = time.sleep, registry.installed
    assert loopwarden.activate_from_env(environ, start_dir=tmp_path) is None
    _nothing_switched_on(sleep_before, installed_before)


def test_valid_values_switch_detection_on(tmp_path: Path) -> None:
    warden = loopwarden.activate_from_env(
        {
            "LOOPWARDEN": "record",
            "LOOPWARDEN_ALLOW": f"{__name__}:_allowed_sleeper",
        },
        start_dir=tmp_path,
    )
    assert warden is not None and warden.active and warden.mode == "record"
    assert [a.spec for a in warden.allowances] == [f"{__name__}:_allowed_sleeper"]
    asyncio.run(_sleep_on_the_loop())
    asyncio.run(_sleep_in_allowed_function())
    (finding,) = warden.findings
    assert finding.primitive == "time.sleep"
    assert "_sleep_on_the_loop" in finding.user_caller


def test_pyproject_supplies_what_the_environment_does_not(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.loopwarden]\n"
        'mode = "raise"\n'
        f'allow = ["{__name__}:_allowed_sleeper = tested here"]\n',
        encoding="utf-8",
    )
    warden = loopwarden.activate_from_env({"LOOPWARDEN": "warn"}, start_dir=tmp_path)
    assert warden is not None
    assert warden.mode == "warn"  # the environment beats pyproject
    assert [a.reason for a in warden.allowances] == ["tested here"]
    asyncio.run(_sleep_in_allowed_function())
    assert warden.findings == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LOOPWARDEN": "loud"}, "valid values: raise, warn, record, off"),
        ({"LOOPWARDEN": "warn", "LOOPWARDEN_STALL_MS": "-1"}, "LOOPWARDEN_STALL_MS"),
        ({"LOOPWARDEN": "warn", "LOOPWARDEN_REPORT": "out.txt"}, ".json or .html"),
        ({"LOOPWARDEN": "warn", "LOOPWARDEN_ALLOW": "not a module"}, "not a module name"),
    ],
)
def test_bad_values_print_one_line_and_stay_off(
    environ: dict[str, str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sleep_before, installed_before = time.sleep, registry.installed
    assert loopwarden.activate_from_env(environ, start_dir=tmp_path) is None
    _nothing_switched_on(sleep_before, installed_before)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("loopwarden: ")
    assert expected in err
    assert "detection is off" in err


def test_bad_pyproject_value_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.loopwarden]\nstall_ms = 'soon'\n")
    assert loopwarden.activate_from_env({"LOOPWARDEN": "warn"}, start_dir=tmp_path) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stall_ms" in err and "detection is off" in err


def test_stall_ms_is_passed_when_set() -> None:
    assert env_module.warden_options(Settings(stall_ms=120))["stall_ms"] == 120
    assert "stall_ms" not in env_module.warden_options(Settings(stall_ms=0))
    assert "stall_ms" not in env_module.warden_options(Settings())


_APP = """
import asyncio, time, loopwarden
loopwarden.activate_from_env()

async def main():
    time.sleep(0.001)

asyncio.run(main())
print("app finished")
"""


@pytest.mark.parametrize("suffix", [".json", ".html"])
def test_report_is_written_at_exit(suffix: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(_APP, encoding="utf-8")
    report = tmp_path / f"blocking{suffix}"
    result = run_python("app.py", cwd=tmp_path, LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report))
    assert result.returncode == 0, result.stderr
    assert "app finished" in result.stdout
    assert f"report written to {report}" in result.stderr
    text = report.read_text(encoding="utf-8")
    if suffix == ".json":
        data = json.loads(text)
        assert [f["primitive"] for f in data["findings"]] == ["time.sleep"]
        assert data["meta"]["mode"] == "record"
    else:
        assert "time.sleep" in text and "app.py" in text


def test_unset_in_a_real_app_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(_APP, encoding="utf-8")
    result = run_python("app.py", cwd=tmp_path, LOOPWARDEN_REPORT=str(tmp_path / "r.json"))
    assert result.returncode == 0
    assert result.stderr == ""
    assert not (tmp_path / "r.json").exists()
