"""pytest's and plugins' machinery never produce findings, even when the main thread
reports a running loop for the whole session (qasync's ``already_running=True``, like
older qasync versions that set the running loop at loop creation); also --pdb and --cov."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import make_project, read_report, run_pytest

RUN_ROOT: list[Path] = []

FILES = {
    "pytest.ini": """[pytest]
addopts = -p no:benchmark
asyncio_default_fixture_loop_scope = function
qt_api = pyside6
timeout = 60
timeout_method = thread
log_cli = true
log_cli_level = INFO
""",
    "conftest.py": """
import asyncio
import qasync
from PySide6.QtWidgets import QApplication


def pytest_configure(config):
    app = QApplication.instance() or QApplication([])
    # The main thread now reports a running loop until the process ends.
    config._running_loop = qasync.QEventLoop(app, already_running=True)
    assert asyncio.get_running_loop() is config._running_loop
""",
    "test_inner.py": """
import logging, warnings
import pytest


def test_pytest_fixtures_and_plugins(tmp_path, capsys, caplog, monkeypatch, request, qtbot):
    print("captured")
    logging.getLogger("app").info("logged")
    warnings.warn("a user warning")
    assert capsys.readouterr().out == "captured\\n"
    monkeypatch.setenv("LOOPWARDEN_TEST", "1")
    request.config.cache.set("loopwarden/test", [1])
    assert request.config.cache.get("loopwarden/test", None) == [1]
    assert tmp_path.name
    assert caplog.records


@pytest.mark.parametrize("n", [1, 2])
def test_assertion_rewriting(n):
    assert {"n": n} == {"n": n}


def test_zz_user_code_still_caught(tmp_path):
    (tmp_path / "f.txt").write_text("blocking write on the loop thread")
""",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, dict[str, Any]]:
    root = make_project(tmp_path_factory.mktemp("machinery"), FILES)
    RUN_ROOT.append(root)
    report = root / "findings.json"
    result = run_pytest(
        root,
        "-rA",
        "--block-detect",
        f"--block-detect-report={report}",
        "--junitxml=junit.xml",
        "--cov=.",
        "--pdb",
        stdin_text="continue\n",
    )
    return result, read_report(report)


def test_only_the_user_code_is_reported(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, report = run
    primitives = [(f["nodeid"].split("::")[-1], f["origin"]) for f in report["findings"]]
    assert primitives == [("test_zz_user_code_still_caught", "test code")], result.outlines
    result.stdout.fnmatch_lines(["PASSED test_inner.py::test_pytest_fixtures_and_plugins"])
    assert result.outlines.count("PASSED test_inner.py::test_assertion_rewriting[1]") == 1


def test_pdb_post_mortem_and_coverage(run: tuple[pytest.RunResult, dict[str, Any]]) -> None:
    result, _ = run
    # --pdb entered the debugger for the failing test; "continue" ends the session.
    result.stdout.fnmatch_lines(["*entering PDB*", "*loopwarden: 1 blocking call*"])
    result.stdout.fnmatch_lines(["*coverage: platform*", "*test_inner.py*"])
    assert (RUN_ROOT[0] / "junit.xml").is_file()
