"""One report schema for the plugin and the CLI (issue 13.2, 13.3, 13.22).

``pytest --block-detect-report=findings.json`` writes the documented
``loopwarden-report`` schema with the optional test fields; ``loopwarden
report`` reads it and its HTML names each finding's test and phase; an
``.html`` name writes the HTML report; any other suffix is a usage error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import make_project, read_report, run_pytest

from loopwarden.report import SCHEMA, VERSION, load_report

FILES = {
    "test_blocking.py": """
import asyncio, time

async def _sleep():
    time.sleep(0.001)

def test_sleeps_twice():
    asyncio.run(_sleep())
    asyncio.run(_sleep())

def test_reads(tmp_path):
    async def read():
        (tmp_path / "x").write_text("x")
    asyncio.run(read())

def test_quiet():
    time.sleep(0.001)  # no loop: no finding
""",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = make_project(tmp_path_factory.mktemp("report_file"), FILES)
    result = run_pytest(
        root,
        "--block-detect=record",
        "--block-detect-report=out/findings.json",
    )
    assert result.ret == 0, result.stdout.str()
    html = run_pytest(root, "--block-detect=record", "--block-detect-report=out/direct.html")
    assert html.ret == 0, html.stdout.str()
    return root, read_report(root / "out" / "findings.json")


def test_the_plugin_writes_the_documented_schema(project: tuple[Path, dict[str, Any]]) -> None:
    _, report = project
    assert (report["schema"], report["version"]) == (SCHEMA, VERSION)
    assert report["summary"]["total"] == 3
    assert {f["nodeid"].split("::")[-1] for f in report["findings"]} == {
        "test_sleeps_twice",
        "test_reads",
    }
    assert {f["phase"] for f in report["findings"]} == {"call"}
    assert all("nodeid" not in f["details"] for f in report["findings"])  # one place only
    sleeps = next(g for g in report["groups"] if g["primitive"] == "time.sleep")
    assert sleeps["count"] == 2
    assert sleeps["tests"] == ["test_blocking.py::test_sleeps_twice"]
    assert report["settings"]["mode"] == "record"
    # The schema is documented, test fields included.
    docs = (Path(__file__).parents[2] / "docs" / "reports.md").read_text(encoding="utf-8")
    for field in ('"schema"', "nodeid", "phase", "tests", "version"):
        assert field in docs


def test_loopwarden_report_reads_it_and_shows_tests_and_phases(
    project: tuple[Path, dict[str, Any]],
) -> None:
    root, _ = project
    collector = load_report(root / "out" / "findings.json")
    assert collector.total == 3
    done = subprocess.run(
        [sys.executable, "-m", "loopwarden", "report", "out/findings.json", "-o", "out/r.html"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page = (root / "out" / "r.html").read_text(encoding="utf-8")
    assert "test_blocking.py::test_sleeps_twice (call)" in page
    assert "test_blocking.py::test_reads (call)" in page


def test_an_html_name_writes_the_html_report(project: tuple[Path, dict[str, Any]]) -> None:
    root, _ = project
    page = (root / "out" / "direct.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "test_blocking.py::test_sleeps_twice (call)" in page
    with pytest.raises(json.JSONDecodeError):
        json.loads(page)


def test_another_suffix_is_a_usage_error(tmp_path: Path) -> None:
    root = make_project(tmp_path, FILES)
    result = run_pytest(root, "--block-detect=record", "--block-detect-report=findings.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "must end in .json or .html" in result.stderr.str()
    assert not (root / "findings.txt").exists()


def test_the_old_plugin_schema_is_still_read(tmp_path: Path) -> None:
    root, report = project_report_as_legacy(tmp_path)
    collector = load_report(root)
    assert collector.total == len(report["findings"])
    assert collector.findings[0].details["nodeid"] == report["findings"][0]["nodeid"]


def project_report_as_legacy(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    finding = {
        "primitive": "time.sleep",
        "family": "sleep",
        "thread_name": "MainThread",
        "thread_id": 1,
        "loop": "asyncio loop",
        "caller": "t.py:3 in f",
        "user_caller": "t.py:3 in f",
        "stack": [{"filename": "t.py", "lineno": 3, "function": "f", "module": "t"}],
        "suggestion": "Use await asyncio.sleep().",
        "timestamp": 1700000000.0,
        "details": {},
        "nodeid": "t.py::test_f",
        "phase": "call",
        "origin": "test code",
        "worker": None,
    }
    legacy = {"schema": "loopwarden-pytest/1", "settings": {"mode": "fail"}, "count": 1}
    legacy.update(findings=[finding], groups=[])
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy), encoding="utf-8")
    return path, legacy
