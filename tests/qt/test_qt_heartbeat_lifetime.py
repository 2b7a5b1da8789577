"""A Qt heartbeat let go of on another thread never leaves a timer behind (segfault).

The stall watchdog's Qt heartbeat and its receiver (a QObject with a QTimer on
the GUI thread) refer to each other, and the watchdog thread is the one that
drops a stopped heartbeat. Before the fix, the garbage collector running on
any other thread freed the pair there; Qt could not stop the receiver's timer
from that thread, and the GUI thread later fired it on the freed object:
``QObject::~QObject: Timers cannot be stopped from another thread``, then
SIGSEGV in ``QTimerInfoList::activateTimers`` (3 runs in 3 here), the flaky
crash of the whole test suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc, sys, threading, time
    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
    from loopwarden import threads
    from loopwarden.watchdog import heartbeats

    app = QCoreApplication([])
    heartbeats.prepare_qt()
    # The Qt integration registers a probe for the GUI thread while a warden is active.
    threads.thread_probes[threading.get_ident()] = lambda: 'Qt event loop'

    def spin(ms):
        loop = QEventLoop()
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        deadline.start(ms)
        loop.exec()
        deadline.stop()

    heartbeat = heartbeats.QtHeartbeat(threading.get_ident(), time.monotonic, 0.005)
    heartbeat.start()
    spin(50)  # the receiver's timer runs on the GUI thread
    print("beats", heartbeat.beats > 0, flush=True)
    heartbeat.stop()  # asks the GUI thread to stop it: queued, not run yet
    box = [heartbeat]
    del heartbeat

    def drop_on_a_worker():
        box.clear()  # the watchdog thread lets go of its heartbeat...
        gc.collect()  # ...and the garbage collector runs there

    worker = threading.Thread(target=drop_on_a_worker)
    worker.start()
    worker.join()
    spin(200)  # the GUI thread processes its events and timers again
    print("survived", flush=True)
    """
)


def test_a_heartbeat_dropped_on_another_thread_stops_its_timer_on_the_gui_thread() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr  # before the fix: -11 (SIGSEGV)
    assert "beats True" in done.stdout  # the receiver's timer did run
    assert "survived" in done.stdout
    assert "Timers cannot be stopped from another thread" not in done.stderr
