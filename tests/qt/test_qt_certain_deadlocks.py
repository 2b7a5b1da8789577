"""Self-deadlocks on qasync and QtAsyncio loops (issue 12.3a), in a real QApplication.

A ``threading.Lock`` the GUI/loop thread already holds, taken again; and
``future.result()`` whose only completion is a callback queued on that loop.
Each scenario runs in a fresh interpreter with a timeout, so a regression
fails instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

_SCRIPT = """
import asyncio, concurrent.futures, sys, threading
from PySide6.QtWidgets import QApplication
import loopwarden

MODE, KIND, CASE = sys.argv[1:4]
app = QApplication([])

def self_held_lock():
    lock = threading.Lock()
    with lock:
        lock.acquire()

def queued(schedule):
    def case():
        loop = asyncio.get_running_loop()
        future = concurrent.futures.Future()
        schedule(loop, future)
        # A timeout: a plain finding (qasync's threadsafe queue) must not hang.
        return future.result(timeout=0.5 if CASE == "threadsafe" else None)
    return case

def from_worker(loop, future):
    worker = threading.Thread(target=lambda: loop.call_soon_threadsafe(future.set_result, 42))
    with loopwarden.allow_blocking(reason="the loop must not run meanwhile"):
        worker.start()
        worker.join(10)

CASES = {
    "lock": self_held_lock,
    "soon": queued(lambda loop, future: loop.call_soon(future.set_result, 42)),
    "threadsafe": queued(from_worker),
}

async def main():
    with loopwarden.guard(mode=MODE) as warden:
        try:
            CASES[CASE]()
            print("returned", flush=True)
        except loopwarden.BlockingCallError as error:
            print("raised", sorted(error.finding.details), flush=True)
            print(str(error), flush=True)
        except concurrent.futures.TimeoutError:
            print("timed out", flush=True)
        await asyncio.sleep(0.05)
    print("findings", [sorted(f.details) for f in warden.findings], flush=True)

if KIND == "qasync":
    import qasync
    qasync.run(main())
else:
    from PySide6 import QtAsyncio
    QtAsyncio.run(main(), keep_running=False, quit_qapp=True)
"""


def _run(mode: str, kind: str, case: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(_SCRIPT), mode, kind, case],
        capture_output=True,
        timeout=20,  # a hang is the bug: fail, do not hang the suite
        check=False,
    )
    return done.stdout.decode() + done.stderr.decode()


@pytest.mark.parametrize("kind", ["qasync", "qtasyncio"])
@pytest.mark.parametrize("mode", ["raise", "warn", "record"])
def test_a_self_held_lock_on_a_qt_loop_raises_in_every_mode(mode: str, kind: str) -> None:
    out = _run(mode, kind, "lock")
    assert "raised ['deadlock', 'hangs_forever', 'held_since', 'self_held']" in out, out
    assert "this thread already holds this threading.Lock" in out, out


@pytest.mark.parametrize("kind", ["qasync", "qtasyncio"])
@pytest.mark.parametrize("mode", ["raise", "warn", "record"])
def test_a_completion_queued_on_the_qt_loop_raises_in_every_mode(mode: str, kind: str) -> None:
    out = _run(mode, kind, "soon")
    assert "raised ['deadlock', 'hangs_forever']" in out, out
    assert "callback queued on this same event loop" in out, out


def test_qtasyncio_call_soon_threadsafe_completion_is_a_deadlock() -> None:
    out = _run("record", "qtasyncio", "threadsafe")
    # With a timeout: recorded as a deadlock, and the call waits its timeout.
    assert "timed out" in out, out
    assert "findings [['deadlock', 'duration_ms', 'hangs_forever']]" in out, out


def test_qasync_call_soon_threadsafe_completion_is_a_plain_finding() -> None:
    # qasync queues it inside a Qt event, out of Python's sight: not claimed.
    out = _run("record", "qasync", "threadsafe")
    assert "timed out" in out, out
    assert "findings [['duration_ms']]" in out, out
