"""A forked child inherits the GUI thread's loop level, not its event loop.

qasync's own suite runs ``loop.run_in_executor(ProcessPoolExecutor(), ...)``:
the pool forks on the loop thread, and the child (multiprocessing's bootstrap,
then the task) used to be reported as blocking "while Qt event loop
(QThread.loopLevel() == 1) on the GUI thread was running", so in raise mode the
child died and the pool broke. Each scenario runs in a fresh interpreter: the
test process has threads, and fork() of a threaded process is unsafe.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from reports_helpers import run_python

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin",
    reason="needs os.fork (and Qt on macOS does not survive a fork)",
)

FORKING_QASYNC_APP = """
import asyncio, json, multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication
import qasync

import loopwarden

warden = loopwarden.guard(mode="raise")
warden.__enter__()
at_fork = []  # the parent's findings, inherited by the child
os.register_at_fork(after_in_child=lambda: at_fork.append(len(warden.findings)))


def blocks_in_child():
    # multiprocessing's bootstrap opened os.devnull on this thread already.
    time.sleep(0.001)
    with open(os.devnull, "rb") as devnull:
        devnull.read()
    return [f.primitive for f in warden.findings[at_fork[0]:]]


class Emitter(QObject):
    fired = Signal()


def caught_in_child_slot():
    # A slot the child runs itself (a direct emit): checked as on the parent.
    caught = []

    def slot():
        try:
            time.sleep(0.001)
        except loopwarden.BlockingCallError as exc:
            caught.append(exc.finding.primitive)

    emitter = Emitter()
    emitter.fired.connect(slot)
    emitter.fired.emit()
    return caught


async def sleeps():
    time.sleep(0.001)


def caught_in_child_loop():
    # An asyncio loop the child starts itself is guarded too.
    try:
        asyncio.run(sleeps())
    except loopwarden.BlockingCallError as exc:
        return [exc.finding.primitive]
    return []


app = QApplication([])
loop = qasync.QEventLoop(app)
pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
result = {}


async def main():
    try:
        time.sleep(0.001)
    except loopwarden.BlockingCallError as exc:
        result["parent"] = exc.finding.primitive
    # The pool forks right here, on the loop thread.
    result["child"] = await loop.run_in_executor(pool, blocks_in_child)
    result["child slot"] = await loop.run_in_executor(pool, caught_in_child_slot)
    result["child loop"] = await loop.run_in_executor(pool, caught_in_child_loop)


try:
    loop.run_until_complete(main())
except Exception as exc:
    result["error"] = repr(exc)
pool.shutdown()
warden.__exit__(None, None, None)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the forking app saw, run once for the module's tests."""
    cwd = tmp_path_factory.mktemp("fork")
    (cwd / "app.py").write_text(FORKING_QASYNC_APP)
    result = run_python("app.py", cwd=cwd)
    assert result.returncode == 0, result.stderr
    seen: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return seen


def test_a_pool_forked_on_the_qasync_loop_runs_its_tasks_unchecked(
    outcome: dict[str, Any],
) -> None:
    assert "error" not in outcome  # was: BrokenProcessPool, the child raised in its bootstrap
    assert outcome["child"] == []  # nothing in the child ran on an event loop


def test_the_loop_thread_and_the_childs_own_loops_stay_checked(outcome: dict[str, Any]) -> None:
    assert outcome["parent"] == "time.sleep"
    assert outcome["child slot"] == ["time.sleep"]
    assert outcome["child loop"] == ["time.sleep"]
