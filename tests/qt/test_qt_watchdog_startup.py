"""Issue 12.1: the watchdog thread never touches PySide6 for the first time.

PySide6 creates enums and types lazily. When the watchdog thread created
them (``heartbeats.prepare_qt()`` for its Qt heartbeat) while the GUI thread
ran Qt, about 1-3 % of runs of a small qasync app failed: ``AttributeError:
type object 'PySide6.QtCore.Qt' has no attribute 'TimerType'`` in the
application, or a segmentation fault. Each case runs in a fresh interpreter
(PySide6 must not be imported yet) and records, by a spy on ``prepare_qt``,
on which thread the Qt names were resolved. The race itself is measured by
``tests/stress/qt_watchdog_startup.py`` (a few hundred runs).
"""

from __future__ import annotations

import json
import textwrap

import pytest

from rules_support import run_script

pytestmark = pytest.mark.timeout(120)

_SPY = """
import json, threading
import loopwarden.watchdog.heartbeats as hb

calls = []
_prepare = hb.prepare_qt


def spy():
    calls.append((threading.current_thread().name, hb._qt_names is None))
    return _prepare()


hb.prepare_qt = spy


def result(dog, beats):
    watches = {tid: type(w.heartbeat).__name__ for tid, w in dog._watches.items()}
    main = threading.main_thread().ident
    print(json.dumps({
        "calls": calls,
        "heartbeat": watches.get(main),
        "beats": beats.get(main, 0),
    }))
"""

_BEFORE_IMPORT = """
import loopwarden
env = {"LOOPWARDEN": "record", "LOOPWARDEN_STALL_MS": "20"}
warden = loopwarden.activate_from_env(env)  # the documented start-up pattern
assert warden is not None and warden.stall_ms == 20
SPY
import asyncio
import qasync
from PySide6.QtWidgets import QApplication
from loopwarden import watchdog

app = QApplication([])


async def main():
    dog = watchdog.current_watchdog()
    while dog.heartbeats().get(threading.main_thread().ident, 0) < 3:
        await asyncio.sleep(0.01)
    return dog, dog.heartbeats()


loop = qasync.QEventLoop(app)
with loop:
    result(*loop.run_until_complete(main()))
"""

_WORKER_ACTIVATES = """
SPY
import time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
import loopwarden
from loopwarden import watchdog

app = QApplication([])
started = threading.Event()
leave = threading.Event()


def worker():
    # A warden activated off the GUI thread after PySide6 was imported: the
    # names may be resolved neither here nor on the watchdog thread.
    with loopwarden.guard(mode="record", stall_ms=20):
        started.set()
        leave.wait(30)


thread = threading.Thread(target=worker, name="activating-worker")
thread.start()
started.wait(30)
seen = {}


def tick():
    time.sleep(0)  # a patched call on the GUI thread: its probe runs here
    dog = watchdog.current_watchdog()
    beats = dog.heartbeats()
    if beats.get(threading.main_thread().ident, 0) >= 3:
        seen["result"] = (dog, beats)
        app.quit()


timer = QTimer()
timer.timeout.connect(tick)
timer.start(5)
QTimer.singleShot(20000, app.quit)
app.exec()
timer.stop()
result(*seen["result"])
leave.set()
thread.join(30)
"""


def _run(script: str) -> dict[str, object]:
    code = textwrap.dedent(script).replace("SPY", _SPY)
    out = run_script(code).strip().splitlines()[-1]
    return dict(json.loads(out))


@pytest.mark.parametrize("script", [_BEFORE_IMPORT, _WORKER_ACTIVATES], ids=["env", "worker"])
def test_qt_names_are_resolved_on_the_gui_thread_only(script: str) -> None:
    result = _run(script)
    calls = [tuple(call) for call in result["calls"]]  # type: ignore[attr-defined]
    assert calls, "the Qt names were never prepared"
    # The names were resolved on the GUI (main) thread (a patched call made
    # while resolving them may ask again, on that thread), and the watchdog
    # thread never even asked.
    assert {name for name, unprepared in calls if unprepared} == {"MainThread"}
    assert all(name != "loopwarden-watchdog" for name, _ in calls)
    # And the GUI thread's loop is still watched by its Qt heartbeat.
    assert result["heartbeat"] == "QtHeartbeat"
    assert isinstance(result["beats"], int) and result["beats"] >= 3
