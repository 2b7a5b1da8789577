"""Hostile or mistyped configuration: one clear error naming the valid values, never a crash.

The CLI prints one line and exits with 2, the plugin raises a pytest usage error
(see tests/plugin/test_plugin_hostile_config.py), and ``activate_from_env``
prints one line and lets the application carry on.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import time
from pathlib import Path

import pytest

import loopwarden
from loopwarden import ConfigError, Rule
from loopwarden.config import (
    MIN_STALL_MS,
    load_pyproject_config,
    parse_env_allow,
    parse_stall_ms,
    settings_from_env,
    settings_from_table,
)
from reports_helpers import run_cli, run_python

# -- rule targets ---------------------------------------------------------------------


def test_a_class_as_rule_target_is_rejected_naming_a_method() -> None:
    table = {"rules": [{"target": "json:JSONDecoder", "suggestion": "Parse in a worker."}]}
    with pytest.raises(ConfigError, match=r"'json:JSONDecoder' is a class; name one of its"):
        settings_from_table(table)
    with pytest.raises(ConfigError, match="is a class"):
        loopwarden.mark_blocking("json:JSONDecoder", suggestion="x")


def test_a_missing_rule_target_in_an_imported_module_names_the_closest() -> None:
    table = {"rules": [{"target": "json:lods", "suggestion": "x"}]}
    with pytest.raises(ConfigError, match=r"has no attribute 'lods'; did you mean 'loads'"):
        settings_from_table(table)


def test_a_class_rule_that_reaches_the_registry_is_skipped_and_subclassing_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Rule built directly (not through the config reader) still must not break the host.
    import json as json_module

    from loopwarden import registry as registry_module

    rule = Rule(target="json:JSONDecoder", family="custom", suggestion="x")
    registry_module._class_targets_warned.discard(rule.target)  # warned once per process
    with (
        caplog.at_level(logging.WARNING, logger="loopwarden"),
        loopwarden.guard(mode="record", rules=[rule]),
    ):

        class Decoder(json_module.JSONDecoder):
            pass

        assert isinstance(Decoder(), json_module.JSONDecoder)
        assert json_module.JSONDecoder.__name__ == "JSONDecoder"
    assert "'json:JSONDecoder' is a class" in caplog.text


# -- stall thresholds -----------------------------------------------------------------


@pytest.mark.parametrize("value", [0.4, 1e-300, 9.99, "5"])
def test_stall_ms_below_the_minimum_is_an_error_not_a_rounding(value: object) -> None:
    with pytest.raises(ConfigError, match=f"at least {MIN_STALL_MS:g} ms"):
        parse_stall_ms(value)


def test_fractional_stall_ms_is_kept_and_zero_means_off() -> None:
    assert parse_stall_ms(12.5) == 12.5
    assert settings_from_table({"stall_ms": 12.5}).watchdog_ms == 12.5
    assert settings_from_table({"stall_ms": 0}).watchdog_ms is None


def test_guard_refuses_a_tiny_stall_threshold() -> None:
    with pytest.raises(ConfigError, match="at least 10 ms"):
        loopwarden.guard(stall_ms=1e-300)


# -- LOOPWARDEN_ALLOW -----------------------------------------------------------------


def test_env_allow_takes_an_optional_reason() -> None:
    first, second = parse_env_allow("mylib.io:read_all=vendored, other.mod")
    assert (first.module, first.qualname, first.reason) == ("mylib.io", "read_all", "vendored")
    assert (second.module, second.qualname) == ("other.mod", "")
    assert second.reason == "listed in LOOPWARDEN_ALLOW"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mylib:read all", "is not a qualified name"),
        ("mylib:read-all", "is not a qualified name"),
        ("my lib", "is not a module name"),
        ("mylib:f=", "empty reason"),
        ("=why", "has no target"),
    ],
)
def test_env_allow_entries_are_validated(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"LOOPWARDEN_ALLOW: .*{message}"):
        settings_from_env({"LOOPWARDEN_ALLOW": text})


def test_env_activation_with_a_bad_allowance_logs_one_line_and_the_app_runs(
    tmp_path: Path,
) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import loopwarden\nprint('warden:', loopwarden.activate_from_env())\nprint('app ran')\n",
        encoding="utf-8",
    )
    proc = run_python(
        str(script), cwd=tmp_path, LOOPWARDEN="warn", LOOPWARDEN_ALLOW="mylib:read all"
    )
    assert proc.returncode == 0
    assert "warden: None\napp ran" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "LOOPWARDEN_ALLOW" in lines[0] and "detection is off" in lines[0]


# -- pyproject.toml that is not what it should be --------------------------------------

_BAD_PYPROJECTS: dict[str, bytes] = {
    "tool-is-a-number": b"tool = 5\n",
    "table-is-a-string": b'[tool]\nloopwarden = "warn"\n',
    "not-utf8": b'[tool.loopwarden]\nmode = "warn"\n# caf\xe9\n',
    "not-toml": b"[tool.loopwarden\n",
}


@pytest.mark.parametrize("content", _BAD_PYPROJECTS.values(), ids=_BAD_PYPROJECTS.keys())
def test_bad_pyproject_is_one_config_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "pyproject.toml").write_bytes(content)
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        load_pyproject_config(tmp_path)


@pytest.mark.parametrize("content", _BAD_PYPROJECTS.values(), ids=_BAD_PYPROJECTS.keys())
@pytest.mark.parametrize("command", [["rules"], ["run", "app.py"]], ids=["rules", "run"])
def test_bad_pyproject_gives_the_cli_one_line_and_exit_2(
    tmp_path: Path, content: bytes, command: list[str]
) -> None:
    (tmp_path / "pyproject.toml").write_bytes(content)
    (tmp_path / "app.py").write_text("print('ran')\n", encoding="utf-8")
    proc = run_cli(*command, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("loopwarden: ") and "pyproject.toml" in lines[0]
    assert "ran" not in proc.stdout


def test_bad_pyproject_leaves_env_activation_off_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"tool = 5\n")
    script = tmp_path / "app.py"
    script.write_text(
        "import loopwarden\nprint('warden:', loopwarden.activate_from_env())\n", encoding="utf-8"
    )
    proc = run_python(str(script), cwd=tmp_path, LOOPWARDEN="warn")
    assert proc.returncode == 0 and "warden: None" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'tool' must be a table" in lines[0], proc.stderr


# -- corrupt reports --------------------------------------------------------------------

_VALID_FINDING = {
    "primitive": "time.sleep",
    "family": "sleep",
    "thread_name": "MainThread",
    "thread_id": 1,
    "loop": "asyncio",
    "caller": "app.py:3 in tick",
    "user_caller": "app.py:3 in tick",
    "stack": [{"filename": "app.py", "lineno": 3, "function": "tick", "module": "app"}],
    "suggestion": "use asyncio.sleep",
    "timestamp": 1.0,
}

#: Seven ways a report file can be broken, written as bytes.
_CORRUPT_REPORTS: dict[str, bytes] = {
    "empty-file": b"",
    "truncated": b'{"schema": "loopwarden-report", "version": 1, "findings": [{"primi',
    "not-an-object": b'"just a string"',
    "wrong-version": json.dumps({"schema": "loopwarden-report", "version": 99}).encode(),
    "findings-not-a-list": json.dumps(
        {"schema": "loopwarden-report", "version": 1, "findings": 5}
    ).encode(),
    "finding-missing-fields": json.dumps(
        {"schema": "loopwarden-report", "version": 1, "findings": [{"primitive": "time.sleep"}]}
    ).encode(),
    "wrong-types": json.dumps(
        {
            "schema": "loopwarden-report",
            "version": 1,
            "findings": [{**_VALID_FINDING, "timestamp": "yesterday", "stack": 7}],
            "groups": "many",
            "timeline": {"calls": 3},
        }
    ).encode(),
    "not-utf8": b'{"schema": "loopwarden-report", "version": 1, "meta": {"x": "caf\xe9"}}',
}


@pytest.mark.parametrize("content", _CORRUPT_REPORTS.values(), ids=_CORRUPT_REPORTS.keys())
@pytest.mark.parametrize("output", [None, "out.html"], ids=["summary", "to-html"])
def test_corrupt_report_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes, output: str | None
) -> None:
    (tmp_path / "findings.json").write_bytes(content)
    args = ["report", "findings.json", *(["-o", output] if output else [])]
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("loopwarden: ") and "findings.json" in lines[0]
    assert not (tmp_path / "out.html").exists()


def test_report_to_an_unwritable_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    report = {"schema": "loopwarden-report", "version": 1, "findings": [_VALID_FINDING]}
    (tmp_path / "findings.json").write_text(json.dumps(report), encoding="utf-8")
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    # Under a regular file: unwritable even for root, which ignores permission bits.
    proc = run_cli("report", "findings.json", "-o", "a-file/out.html", cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write report 'a-file/out.html'" in lines[0], proc.stderr


# -- typos in names ---------------------------------------------------------------------


def test_allow_blocking_with_a_mistyped_primitive_names_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown primitive or family 'time\.slep'; did you"):
        loopwarden.allow_blocking("time.slep", reason="x")
    with pytest.raises(ConfigError, match="did you mean 'filesystem'"):
        loopwarden.allow_blocking("filesytem", reason="x")


def test_allow_blocking_accepts_primitives_families_and_rules_of_the_active_warden() -> None:
    loopwarden.allow_blocking("time.sleep", "filesystem", "stall", reason="x")
    rule = Rule(target="textwrap:dedent", family="custom", suggestion="x")
    with loopwarden.guard(mode="raise", rules=[rule]):
        with loopwarden.allow_blocking("textwrap.dedent", reason="x"):
            textwrap.dedent("  ok")
        with loopwarden.allow_blocking("sleep", reason="x"):
            time.sleep(0)


def test_allow_with_mistyped_primitives_names_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'filesystem'"):
        loopwarden.allow("json", reason="x", primitives=["filesytem"])
    with pytest.raises(ConfigError, match="did you mean 'filesystem'"):
        loopwarden.guard(allow=[loopwarden.Allowance("json", "", "x", frozenset({"filesytem"}))])


def test_allow_of_a_missing_function_in_an_imported_module_names_the_closest() -> None:
    assert "json" in sys.modules
    with pytest.raises(ConfigError, match=r"'json' has no attribute 'lods'; did you mean 'loads'"):
        loopwarden.allow("json:lods", reason="x")
    with pytest.raises(ConfigError, match=r"'JSONDecoder' has no attribute 'decod'"):
        loopwarden.guard(allow=[("json:JSONDecoder.decod", "x")])


def test_allow_of_a_module_not_imported_yet_is_accepted_as_written() -> None:
    # Documented: loopwarden never imports your modules to check an allowance.
    module = "loopwarden_never_imported_module"
    assert module not in sys.modules
    allowance = loopwarden.allow(f"{module}:anything", reason="x")
    try:
        assert allowance.qualname == "anything"
        assert module not in sys.modules
    finally:
        loopwarden.disallow(allowance)


def test_mode_typos_suggest_the_mode() -> None:
    with pytest.raises(ConfigError, match="did you mean 'record'"):
        settings_from_table({"mode": "recrod"})
    with pytest.raises(ConfigError, match="did you mean 'filesystem'"):
        settings_from_table(
            {"rules": [{"target": "json:loads", "suggestion": "x", "family": "filesytem"}]}
        )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOOPWARDEN_STALL_MS", "0.4", "at least 10 ms"),
        ("LOOPWARDEN_ALLOW", "mylib:read all", "not a qualified name"),
        ("LOOPWARDEN", "wran", "did you mean 'warn'"),
    ],
)
def test_bad_environment_gives_run_one_line_and_exit_2(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    (tmp_path / "app.py").write_text("print('ran')\n", encoding="utf-8")
    env = {"LOOPWARDEN": "warn", variable: value}
    proc = run_cli("run", "app.py", cwd=tmp_path, **env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "ran" not in proc.stdout


def test_env_activation_with_a_tiny_stall_threshold_logs_one_line(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import loopwarden\nprint('warden:', loopwarden.activate_from_env())\n", encoding="utf-8"
    )
    proc = run_python(str(script), cwd=tmp_path, LOOPWARDEN="warn", LOOPWARDEN_STALL_MS="0.4")
    assert proc.returncode == 0 and "warden: None" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 10 ms" in lines[0], proc.stderr
