"""Helpers for the pytest-plugin tests: inner projects run in a subprocess.

The plugin installs process-wide patches, so inner runs that switch it on
happen in a fresh interpreter. Each test module runs its inner project once
(a module-scoped fixture) and checks several things in that one output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: The inner project's ini, independent of the outer run's configuration.
BASE_INI = """[pytest]
addopts = -p no:cacheprovider -p no:benchmark
asyncio_default_fixture_loop_scope = function
qt_api = pyside6
"""


def make_project(root: Path, files: dict[str, str], ini_extra: str = "") -> Path:
    """Write ``files`` and a pytest.ini under ``root``."""
    (root / "pytest.ini").write_text(BASE_INI + ini_extra, encoding="utf-8")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run_pytest(
    root: Path, *args: str, timeout: float = 120, stdin_text: str = ""
) -> pytest.RunResult:
    """Run pytest in a subprocess in ``root`` (Qt offscreen, no outer addopts).

    ``stdin_text`` is what the inner run reads on stdin (e.g. pdb commands).
    """
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    for name in ("PYTEST_ADDOPTS", "LOOPWARDEN", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin_text,
        check=False,
    )
    return pytest.RunResult(proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), 0)


def read_report(path: Path) -> dict[str, Any]:
    """Load a ``--block-detect-report`` JSON file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def findings_by_test(report: dict[str, Any]) -> dict[str, list[str]]:
    """``test name -> ["phase:primitive", ...]`` from a JSON report."""
    found: dict[str, list[str]] = {}
    for finding in report["findings"]:
        test = finding["nodeid"].split("::")[-1]
        found.setdefault(test, []).append(f"{finding['phase']}:{finding['primitive']}")
    return found


def section(result: pytest.RunResult, test: str) -> str:
    """The failure/error text of one inner test (between its ``___`` headers)."""
    lines = result.outlines
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("_") and line.rstrip("_ ").strip():
            title = line.strip("_ ")
            inside = title in (test, f"ERROR at setup of {test}", f"ERROR at teardown of {test}")
            continue
        if line.startswith("=") and inside:
            inside = False
        if inside:
            out.append(line)
    return "\n".join(out)
