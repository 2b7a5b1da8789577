"""[tool.loopwarden] parsing, environment parsing and the precedence between layers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loopwarden import ConfigError
from loopwarden.config import (
    DEFAULT_MODE,
    Settings,
    find_pyproject,
    load_pyproject_config,
    settings_from_env,
    settings_from_table,
)
from reports_helpers import SWALLOWING_SCRIPT, run_cli

PYPROJECT = """
[project]
name = "someapp"

[tool.loopwarden]
mode = "record"
stall_ms = 150
allow = [
    { target = "someapp.boot:load_settings", reason = "runs before the window shows" },
    "someapp.legacy:export = exports are rare",
]

[[tool.loopwarden.rules]]
target = "json:load"
suggestion = "Parse in a worker thread."
family = "filesystem"
"""


def write_pyproject(directory: Path, text: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_pyproject_table_is_read(tmp_path: Path) -> None:
    write_pyproject(tmp_path, PYPROJECT)
    settings = load_pyproject_config(tmp_path)
    assert settings.mode == "record"
    assert settings.stall_ms == 150
    assert [a.spec for a in settings.allow] == [
        "someapp.boot:load_settings",
        "someapp.legacy:export",
    ]
    assert [a.reason for a in settings.allow] == [
        "runs before the window shows",
        "exports are rare",
    ]
    (rule,) = settings.rules
    assert (rule.target, rule.family, rule.suggestion) == (
        "json:load",
        "filesystem",
        "Parse in a worker thread.",
    )


def test_pyproject_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    write_pyproject(tmp_path, PYPROJECT)
    nested = tmp_path / "src" / "someapp"
    nested.mkdir(parents=True)
    assert find_pyproject(nested) == tmp_path / "pyproject.toml"
    assert load_pyproject_config(nested).mode == "record"


def test_allow_as_a_table_of_reasons(tmp_path: Path) -> None:
    write_pyproject(
        tmp_path,
        """
        [tool.loopwarden.allow]
        "someapp.boot:load_settings" = "start-up only"
        """,
    )
    (allowance,) = load_pyproject_config(tmp_path).allow
    assert (allowance.module, allowance.qualname, allowance.reason) == (
        "someapp.boot",
        "load_settings",
        "start-up only",
    )


def test_no_table_or_no_file_gives_empty_settings(tmp_path: Path) -> None:
    write_pyproject(tmp_path, '[project]\nname = "x"\n')
    assert load_pyproject_config(tmp_path) == Settings()
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    (tmp_path / "pyproject.toml").unlink()
    assert load_pyproject_config(empty) == Settings()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"mode": "loud"}, "valid values: raise, warn, record, off"),
        ({"stall_ms": -5}, "number of milliseconds >= 10"),
        ({"stall_ms": "soon"}, "number of milliseconds >= 10"),
        ({"report": "out.txt"}, ".json or .html"),
        ({"colour": True}, "valid keys: mode, stall_ms, min_ms, allow, rules, report"),
        ({"allow": ["someapp:f"]}, "needs a reason"),
        ({"allow": [{"target": "someapp:f", "reason": ""}]}, "needs a reason"),
        ({"allow": [{"target": "someapp:f", "reason": "x", "why": 1}]}, "valid keys"),
        ({"rules": [{"target": "json:load", "suggestion": "x", "family": "io"}]}, "valid families"),
        ({"rules": [{"target": "json.load", "suggestion": "x"}]}, "package.module:function"),
        ({"rules": [{"target": "json:load"}]}, "needs a suggestion"),
    ],
)
def test_bad_values_name_the_valid_ones(table: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        settings_from_table(table)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "[tool.loopwarden\nmode = ")
    with pytest.raises(ConfigError, match="cannot read"):
        load_pyproject_config(tmp_path)


def test_env_layer_parses_every_variable() -> None:
    settings = settings_from_env(
        {
            "LOOPWARDEN": "RAISE",
            "LOOPWARDEN_STALL_MS": "250",
            "LOOPWARDEN_REPORT": "out.html",
            "LOOPWARDEN_ALLOW": "a.b:c, d.e ,",
        }
    )
    assert settings.mode == "raise"
    assert settings.stall_ms == 250
    assert settings.report == "out.html"
    assert [a.spec for a in settings.allow] == ["a.b:c", "d.e"]


def test_empty_env_sets_nothing() -> None:
    settings = settings_from_env({"LOOPWARDEN": "", "LOOPWARDEN_STALL_MS": " "})
    assert (settings.mode, settings.stall_ms, settings.report, settings.allow) == (
        None,
        None,
        None,
        (),
    )


def test_precedence_cli_over_env_over_pyproject_over_defaults() -> None:
    pyproject = settings_from_table(
        {"mode": "raise", "stall_ms": 300, "report": "py.json", "allow": ["p.q:r = from pyproject"]}
    )
    env = settings_from_env({"LOOPWARDEN": "record", "LOOPWARDEN_STALL_MS": "200"})
    cli = Settings(mode="warn", source="command line")

    merged = Settings.merge(cli, env, pyproject)
    assert merged.mode == "warn"  # CLI beats env and pyproject
    assert merged.stall_ms == 200  # env beats pyproject when the CLI is silent
    assert merged.report == "py.json"  # pyproject when nobody else sets it
    assert [a.spec for a in merged.allow] == ["p.q:r"]  # lists add up

    assert Settings.merge(env, pyproject).mode == "record"
    assert Settings.merge(pyproject).mode == "raise"
    assert Settings.merge().effective_mode == DEFAULT_MODE == "warn"
    assert Settings.merge().watchdog_ms is None
    assert Settings(stall_ms=0).watchdog_ms is None  # 0 switches the watchdog off


def test_precedence_end_to_end_through_the_cli(tmp_path: Path) -> None:
    """pyproject says raise (exit 1 on findings); env and CLI override it in turn."""
    write_pyproject(tmp_path, '[tool.loopwarden]\nmode = "raise"\n')
    (tmp_path / "app.py").write_text(SWALLOWING_SCRIPT, encoding="utf-8")
    from_pyproject = run_cli("run", "--no-summary", "app.py", cwd=tmp_path)
    assert from_pyproject.returncode == 1, from_pyproject.stderr

    from_env = run_cli("run", "--no-summary", "app.py", cwd=tmp_path, LOOPWARDEN="record")
    assert from_env.returncode == 0, from_env.stderr

    from_cli = run_cli(
        "run", "--no-summary", "--mode", "raise", "app.py", cwd=tmp_path, LOOPWARDEN="record"
    )
    assert from_cli.returncode == 1, from_cli.stderr


def test_pyproject_shares_the_pytest_plugins_fail_mode_and_rule_names(tmp_path: Path) -> None:
    write_pyproject(
        tmp_path,
        """
        [tool.loopwarden]
        mode = "fail"

        [[tool.loopwarden.rules]]
        target = "json:load"
        suggestion = "Parse off the loop."
        name = "json.load (vendor)"
        """,
    )
    settings = load_pyproject_config(tmp_path)
    assert settings.mode == "fail"
    assert settings.warden_mode == "record"  # outside pytest, "fail" records...
    assert settings.rules[0].name == "json.load (vendor)"
    with pytest.raises(ConfigError, match=r"raise, warn, record, off$"):
        settings_from_env({"LOOPWARDEN": "fail"})  # ...and is not an environment value
    (tmp_path / "app.py").write_text(SWALLOWING_SCRIPT, encoding="utf-8")
    result = run_cli("run", "app.py", cwd=tmp_path)  # ...and findings fail the run
    assert result.returncode == 1, result.stderr
    assert "time.sleep() blocked once" in result.stderr
