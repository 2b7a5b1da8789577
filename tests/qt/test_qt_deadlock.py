"""A certain deadlock on a qasync or QtAsyncio loop raises in every mode.

``run_coroutine_threadsafe(coro, own_loop).result()`` can never return: the
coroutine runs on the loop the caller blocks. Qt loops queue the scheduling
callback in Qt's event queue, not in ``loop._ready``. Each scenario runs in a
fresh interpreter with a timeout, so a regression fails instead of hanging.
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

MODE, KIND, TARGET = sys.argv[1:4]
app = QApplication([])

async def answer():
    return 42

def other_loop():
    loop = asyncio.SelectorEventLoop()  # not the Qt policy's loop
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return loop

async def main():
    own = asyncio.get_running_loop()
    target = own if TARGET == "own" else other_loop()
    future = asyncio.run_coroutine_threadsafe(answer(), target)
    with loopwarden.guard(mode=MODE) as warden:
        try:
            print("result", future.result(), flush=True)
        except loopwarden.BlockingCallError as error:
            print("raised", error.finding.details, flush=True)
            print(str(error), flush=True)
    print("findings", [f.details for f in warden.findings], flush=True)

if KIND == "qasync":
    import qasync
    qasync.run(main())
else:
    from PySide6 import QtAsyncio
    QtAsyncio.run(main(), keep_running=False, quit_qapp=True)
"""


def _run(mode: str, kind: str, target: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(_SCRIPT), mode, kind, target],
        capture_output=True,
        timeout=20,  # a hang is the bug: fail, do not hang the suite
        check=False,
    )
    return done.stdout.decode() + done.stderr.decode()


@pytest.mark.parametrize("kind", ["qasync", "qtasyncio"])
@pytest.mark.parametrize("mode", ["raise", "warn", "record"])
def test_result_of_a_coroutine_on_the_own_qt_loop_raises_in_every_mode(
    mode: str, kind: str
) -> None:
    out = _run(mode, kind, "own")
    assert "raised {'deadlock': True, 'hangs_forever': True}" in out, out
    assert "This will deadlock" in out, out
    assert "result 42" not in out, out


@pytest.mark.parametrize("kind", ["qasync", "qtasyncio"])
def test_result_of_a_coroutine_on_another_loop_is_no_deadlock(kind: str) -> None:
    out = _run("record", kind, "other")
    assert "result 42" in out, out
    assert "raised" not in out, out
    # Not the bare word: a checkout path may contain it.
    assert "'deadlock': True" not in out and "This will deadlock" not in out, out
