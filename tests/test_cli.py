"""The command line: run (script and -m), exit codes, report conversion, rules, --help."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from loopwarden.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, _split_run_argv, main
from reports_helpers import BLOCKING_SCRIPT, CLEAN_SCRIPT, SWALLOWING_SCRIPT, run_cli


def call(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process (for commands that run no target)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(BLOCKING_SCRIPT, encoding="utf-8")
    return path


def test_run_a_script_with_arguments(script: Path, tmp_path: Path) -> None:
    result = run_cli(
        "run", "--mode", "record", "--report", "out.json", "app.py", "--mode", "x", "-v",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    # Options after the script belong to the script; it runs as __main__.
    assert "argv: ['--mode', 'x', '-v']" in result.stdout
    assert "name: __main__" in result.stdout
    assert "loopwarden: 5 findings at 3 places to fix" in result.stderr
    assert "time.sleep() blocked 3 times" in result.stderr
    assert "app.py:5 in tick" in result.stderr
    data = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert data["summary"]["total"] == 5
    assert data["meta"]["command"] == "loopwarden run app.py --mode x -v"


def test_run_a_module_with_dash_m(tmp_path: Path) -> None:
    package = tmp_path / "someapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(BLOCKING_SCRIPT, encoding="utf-8")
    result = run_cli("run", "--mode=record", "-m", "someapp", "a", "--b", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert "argv: ['a', '--b']" in result.stdout
    assert "name: __main__" in result.stdout
    assert "time.sleep() blocked 3 times" in result.stderr
    assert "someapp/__main__.py:5 in tick" in result.stderr


def test_default_mode_warns_and_still_exits_zero(script: Path, tmp_path: Path) -> None:
    result = run_cli("run", "app.py", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert "BlockingCallWarning" in result.stderr


def test_clean_run_reports_nothing(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text(CLEAN_SCRIPT, encoding="utf-8")
    result = run_cli("run", "--fail-on-findings", "clean.py", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert "no blocking calls" in result.stderr


def test_exit_code_1_for_findings_in_raise_mode(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SWALLOWING_SCRIPT, encoding="utf-8")
    # The script swallows BlockingCallError and exits 0; the finding still fails the run.
    result = run_cli("run", "--mode", "raise", "app.py", cwd=tmp_path)
    assert result.returncode == EXIT_FINDINGS, result.stderr
    assert "time.sleep() blocked once" in result.stderr


def test_exit_code_1_with_fail_on_findings(script: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--mode", "record", "--fail-on-findings", "app.py", cwd=tmp_path)
    assert result.returncode == EXIT_FINDINGS
    assert run_cli("run", "--mode", "record", "app.py", cwd=tmp_path).returncode == EXIT_OK


def test_the_targets_own_exit_code_wins(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    assert run_cli("run", "--fail-on-findings", "exits.py", cwd=tmp_path).returncode == 3
    (tmp_path / "message.py").write_text("raise SystemExit('bye')\n")
    result = run_cli("run", "message.py", cwd=tmp_path)
    assert (result.returncode, result.stderr.splitlines()[0]) == (1, "bye")


def test_an_exception_in_the_target_exits_1_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "crash.py").write_text("def boom():\n    raise ValueError('broken')\nboom()\n")
    result = run_cli("run", "crash.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "ValueError: broken" in result.stderr
    assert 'crash.py", line 3' in result.stderr
    assert "loopwarden/cli.py" not in result.stderr  # our frames are hidden


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--mode", "loud", "app.py"], "valid values: raise, warn, record, off"),
        (["run", "--stall-ms", "-3", "app.py"], "milliseconds >= 10"),
        (["run", "--report", "out.txt", "app.py"], ".json or .html"),
        (["run", "missing.py"], "cannot open script 'missing.py'"),
        (["run", "-m", "no_such_module_xyz"], "no module named 'no_such_module_xyz'"),
        (["run"], "run needs a script"),
        (["frobnicate"], "invalid choice"),
        ([], "required: COMMAND"),
        (["report", "missing.json"], "cannot read report"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli(*argv, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["report"], ["rules"]])
def test_help_everywhere(command: list[str]) -> None:
    code, out, _ = call(*command, "--help")
    assert code == 0
    assert out.startswith("usage: loopwarden")
    if command == ["run"]:
        assert "exit codes:" in out and "-m MODULE" in out


def test_split_run_argv() -> None:
    assert _split_run_argv(["--mode", "raise", "a.py", "--mode", "x"]) == (
        ["--mode", "raise"],
        ["a.py", "--mode", "x"],
    )
    assert _split_run_argv(["--report=r.json", "-m", "pkg.mod", "-x"]) == (
        ["--report=r.json", "-m", "pkg.mod"],
        ["-x"],
    )
    assert _split_run_argv(["-mpkg", "arg"]) == (["-m", "pkg"], ["arg"])
    assert _split_run_argv(["--", "-weird.py"]) == ([], ["-weird.py"])


def test_report_converts_json_to_html(script: Path, tmp_path: Path) -> None:
    recorded = run_cli("run", "--mode", "record", "--report", "r.json", "app.py", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    code, out, _ = call("report", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.html"))
    assert code == 0 and "report written to" in out
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count('<section class="group"') == 3
    assert "time.sleep" in page and "builtins.open" in page
    code, out, _ = call("report", str(tmp_path / "r.json"))
    assert code == 0 and "5 findings at 3 places to fix" in out


def test_report_rejects_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    code, _, err = call("report", str(tmp_path / "x.json"))
    assert code == EXIT_USAGE and "not a loopwarden report" in err


def test_rules_reference() -> None:
    code, out, _ = call("rules")
    assert code == 0
    assert out.startswith("sleep (1 rule)")
    assert "  time.sleep\n      when: seconds > 0\n      fix:  Use `await asyncio.sleep" in out
    assert "filesystem (" in out and "pathlib.Path.read_text" in out

    code, markdown, _ = call("rules", "--format", "markdown", "--family", "sleep")
    assert code == 0
    assert "| Primitives | Finding when | Use instead |" in markdown
    assert "| `time.sleep` | seconds > 0 |" in markdown
    assert "filesystem" not in markdown
    # Rules sharing condition and advice share a row: the reference stays readable.
    code, markdown, _ = call("rules", "--format", "markdown", "--family", "filesystem")
    assert "| `os.stat`, `os.lstat`, `os.access`," in markdown


def test_rules_include_extra_rules_from_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.loopwarden.rules]]\ntarget = "json:load"\nsuggestion = "Parse off the loop."\n'
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = call("rules", "--family", "custom")
    assert code == 0
    assert "custom (1 rule)" in out and "json.load" in out and "Parse off the loop." in out


def test_warn_mode_works_for_code_run_by_runpy(script: Path) -> None:
    """runpy.run_path leaves __loader__ and __spec__ None: warn mode must still warn.

    (Python 3.12+ rejects such globals in warnings.warn_explicit.)
    """
    import runpy

    import loopwarden

    with (
        pytest.warns(loopwarden.BlockingCallWarning, match="Blocking call") as caught,
        loopwarden.guard(mode="warn"),
    ):
        runpy.run_path(str(script), run_name="__main__")
    messages = [str(w.message) for w in caught]
    assert any("time.sleep" in m for m in messages)
    assert any("builtins.open" in m for m in messages)


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    """Like `loopwarden rules | head -0`: the reader is gone before we write."""
    import os
    import subprocess
    import sys

    from reports_helpers import clean_env

    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: every write fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "loopwarden", "rules"],
            cwd=tmp_path,
            env=clean_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr


def test_console_script_finds_modules_in_the_current_directory(tmp_path: Path) -> None:
    import subprocess
    import sys

    from reports_helpers import clean_env

    console = Path(sys.executable).with_name("loopwarden")
    if not console.exists():
        pytest.skip("the loopwarden console script is not installed next to this Python")
    (tmp_path / "localmod.py").write_text(BLOCKING_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [str(console), "run", "--mode", "record", "-m", "localmod"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "localmod.py:5 in tick" in result.stderr


def test_run_a_directory_with_a_main_module(tmp_path: Path) -> None:
    (tmp_path / "appdir").mkdir()
    (tmp_path / "appdir" / "__main__.py").write_text(BLOCKING_SCRIPT, encoding="utf-8")
    result = run_cli("run", "--mode", "record", "appdir", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert "time.sleep() blocked 3 times" in result.stderr
