"""``scripts/run_qasync_suite.py`` on a small stand-in for a qasync checkout (no download).

The stand-in has qasync's layout and test names, runs on the installed qasync
and PySide6, and mixes a finding the script knows (the slow-callback test's
deliberate sleep) with one it does not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reports_helpers import clean_env

pytest.importorskip("qasync")  # the stand-in runs on the installed qasync and PySide6

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run_qasync_suite.py"

STAND_IN_TESTS = """
import asyncio, os, time

import pytest
import qasync
from PySide6.QtCore import QCoreApplication


@pytest.fixture
def loop():
    app = QCoreApplication.instance() or QCoreApplication([])
    lp = qasync.QEventLoop(app)
    yield lp
    lp.close()
    asyncio.set_event_loop(None)


def test_slow_callback_duration_logging(loop):
    async def mycoro():
        time.sleep(0.001)  # known: real blocking

    loop.run_until_complete(mycoro())


def test_reads_a_file_on_the_loop(loop):
    async def mycoro():
        os.stat(".")  # not in the script's table

    loop.run_until_complete(mycoro())


def test_quiet(loop):
    loop.run_until_complete(asyncio.sleep(0))
"""


def _stand_in(root: Path) -> Path:
    (root / "src" / "qasync").mkdir(parents=True)  # empty: the installed qasync is imported
    (root / "tests").mkdir()
    (root / "tests" / "test_qeventloop.py").write_text(STAND_IN_TESTS)
    (root / "pyproject.toml").write_text('[project]\nname = "qasync"\nversion = "0.0-test"\n')
    return root


def _run(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_known_findings_are_classified_and_unknown_ones_fail_the_run(tmp_path: Path) -> None:
    status, out = _run(str(_stand_in(tmp_path)), "--modes", "record,fail")
    assert status == 1, out
    assert "baseline (no loopwarden): 3 passed" in out
    assert "--block-detect=fail: 1 passed, 2 failed" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.count("|") == 6}
    known = rows["test_qeventloop.py::test_slow_callback_duration_logging"]
    assert "time.sleep" in known and "tests/test_qeventloop.py:" in known
    assert known.rstrip().endswith("real blocking")
    unknown = rows["test_qeventloop.py::test_reads_a_file_on_the_loop"]
    assert "os.stat" in unknown and unknown.rstrip().endswith("UNCLASSIFIED")
    assert "test_quiet" not in out  # no finding, same outcome as the baseline
    failures = [line for line in out.splitlines() if line.startswith("fail ")]
    assert len(failures) == 2
    assert any("slow_callback" in f and f.rstrip().endswith("its finding above") for f in failures)
    assert any("reads_a_file" in f and f.rstrip().endswith("UNEXPLAINED") for f in failures)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "is not a qasync checkout"),
        (["{root}", "--modes", "record,loud"], "unknown mode(s) loud; use record, fail"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    root = _stand_in(tmp_path / "qasync")
    filled = [a.format(missing=tmp_path / "nowhere", root=root) for a in args]
    status, out = _run(*filled)
    assert status == 2
    assert message in out
