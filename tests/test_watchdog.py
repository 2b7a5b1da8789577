"""The stall watchdog on real loops: asyncio, uvloop, qasync, QtAsyncio, plain Qt.

Stalls are real (a pure-Python spin, a C call that releases the GIL, a
C call holding the GIL) and at most ~300 ms long.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import loopwarden
from loopwarden import Finding, threads, watchdog
from loopwarden.errors import BlockingCallWarning, ConfigError
from loopwarden.watchdog import watcher
from loopwarden.watchdog.findings import STALL_SUGGESTION

STALL_S = 0.3


def spin_in_coroutine(seconds: float) -> None:
    """Pure-Python CPU work: releases the GIL every switch interval."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def spin_in_qt_slot(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def wait_in_c(seconds: float) -> None:
    # No rule covers a foreign C call; functions called through ctypes.CDLL
    # release the GIL while they run.
    libc = ctypes.CDLL(None)
    libc.usleep(int(seconds * 1_000_000))


def hold_the_gil(seconds: float) -> None:
    # A C call that keeps the GIL, like a badly behaved extension: functions
    # called through ctypes.PyDLL run without releasing it.
    libc = ctypes.PyDLL(None)
    libc.usleep(int(seconds * 1_000_000))


def stalls(warden: loopwarden.Warden) -> list[Finding]:
    return [f for f in warden.findings if f.family == "stall"]


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == watcher.THREAD_NAME]


def culprit_functions(finding: Finding) -> list[str]:
    return [frame.function for frame in finding.stack]


@pytest.fixture
def qasync_loop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    qasync = pytest.importorskip("qasync")
    loop = qasync.QEventLoop(qapp)
    try:
        yield loop
    finally:
        loop.close()


async def stall_then_settle(stall: Callable[[], object], settle_in: float = 0.05) -> None:
    await asyncio.sleep(settle_in)  # let the watchdog find the loop first
    stall()
    await asyncio.sleep(0.05)  # let the heartbeat come back


# -- detection ------------------------------------------------------------------


def test_busy_coroutine_on_qasync_loop_is_one_stall(qasync_loop: asyncio.AbstractEventLoop) -> None:
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        qasync_loop.run_until_complete(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    [stall] = stalls(warden)
    assert stall.primitive == "stall"
    assert stall.thread_id == threading.get_ident()
    assert "qasync" in stall.loop
    assert stall.stack[-1].function == "spin_in_coroutine"
    assert "spin_in_coroutine" in stall.user_caller
    assert stall.details["duration_ms"] >= 100
    assert stall.details["samples"] >= 1
    assert "stalled for" in stall.message
    assert "loopwarden" not in {frame.module.partition(".")[0] for frame in stall.stack}


def test_busy_qt_timer_slot_under_qasync_is_one_stall(
    qasync_loop: asyncio.AbstractEventLoop,
) -> None:
    from PySide6.QtCore import QTimer

    async def main() -> None:
        done = asyncio.get_running_loop().create_future()

        def slot() -> None:  # run by Qt itself, not by an asyncio handle
            spin_in_qt_slot(STALL_S)
            done.set_result(None)

        QTimer.singleShot(50, slot)
        await done
        await asyncio.sleep(0.05)

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        qasync_loop.run_until_complete(main())

    [stall] = stalls(warden)
    assert stall.stack[-1].function == "spin_in_qt_slot"
    # Python 3.10 frames have no qualified names: "slot" there.
    assert any(name.rpartition(".")[2] == "slot" for name in culprit_functions(stall))


def test_busy_coroutine_on_asyncio_loop_is_one_stall() -> None:
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        asyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    [stall] = stalls(warden)
    assert stall.stack[-1].function == "spin_in_coroutine"
    assert "stall_then_settle" in culprit_functions(stall)
    assert stall.suggestion == STALL_SUGGESTION


def test_busy_coroutine_on_uvloop_is_one_stall() -> None:
    uvloop = pytest.importorskip("uvloop")
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        uvloop.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    [stall] = stalls(warden)
    assert "uvloop" in stall.loop
    assert stall.stack[-1].function == "spin_in_coroutine"


def test_busy_coroutine_on_qtasyncio_is_one_stall(qapp: Any) -> None:
    from PySide6 import QtAsyncio

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        QtAsyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)), keep_running=False)

    [stall] = stalls(warden)
    assert "QtAsyncio" in stall.loop
    assert stall.stack[-1].function == "spin_in_coroutine"


@pytest.mark.skipif(sys.platform == "win32", reason="libc usleep through ctypes.CDLL")
def test_c_call_with_the_gil_released_is_reported_with_its_stack() -> None:
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        asyncio.run(stall_then_settle(lambda: wait_in_c(STALL_S)))

    [stall] = stalls(warden)
    assert stall.stack[-1].function == "wait_in_c"
    assert "gil_held_ms" not in stall.details  # the watchdog kept running


@pytest.mark.skipif(sys.platform == "win32", reason="libc usleep through ctypes.PyDLL")
def test_c_call_holding_the_gil_is_reported_with_the_stack_at_resume() -> None:
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        # The loop must be watched before the GIL is taken: the watchdog
        # cannot look for loops while it is held.
        asyncio.run(stall_then_settle(lambda: hold_the_gil(STALL_S), settle_in=0.15))

    [stall] = stalls(warden)
    assert stall.details["gil_held_ms"] >= 100
    assert stall.stack[-1].function == "hold_the_gil"


def test_stall_of_a_loop_running_in_a_worker_thread() -> None:
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        worker = threading.Thread(
            target=asyncio.run,
            args=(stall_then_settle(lambda: spin_in_coroutine(STALL_S)),),
            name="loop-worker",
        )
        worker.start()
        worker.join(10)

    [stall] = stalls(warden)
    assert stall.thread_name == "loop-worker"
    assert stall.stack[-1].function == "spin_in_coroutine"


def test_plain_qt_gui_thread_stall_is_detected(qapp: Any) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    gui = threading.get_ident()
    # No probe registered by hand: guard() guards the GUI thread of the running
    # QApplication through the Qt integration.
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        event_loop = QEventLoop()

        def slot() -> None:
            spin_in_qt_slot(STALL_S)
            QTimer.singleShot(50, event_loop.quit)

        QTimer.singleShot(100, slot)
        event_loop.exec()

    [stall] = stalls(warden)
    assert stall.loop.startswith("Qt event loop")
    assert stall.thread_id == gui
    assert stall.stack[-1].function == "spin_in_qt_slot"


# -- silence --------------------------------------------------------------------


def test_healthy_loop_over_two_seconds_yields_no_stall(
    qasync_loop: asyncio.AbstractEventLoop,
) -> None:
    beats: dict[int, int] = {}

    async def healthy() -> None:
        for _ in range(200):
            spin_in_coroutine(0.002)  # short work between yields: healthy
            await asyncio.sleep(0.008)
        dog = watchdog.current_watchdog()
        assert dog is not None
        beats.update(dog.heartbeats())

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        qasync_loop.run_until_complete(healthy())

    assert stalls(warden) == []
    # The loop was watched the whole time: its heartbeats kept coming back.
    assert beats.get(threading.get_ident(), 0) >= 10


def test_time_a_loop_spends_stopped_is_not_a_stall() -> None:
    # A loop run until complete, again and again, with plain code in between (a
    # session-scoped loop, qasync's fixture): the beat left pending in the
    # stopped loop runs at once when it runs again, and the time stopped was
    # counted as a stall of the first short step that ran (~360 ms, 10 runs in 10).
    loop = asyncio.new_event_loop()

    async def step(busy_s: float) -> None:
        spin_in_coroutine(busy_s)  # well under the threshold
        await asyncio.sleep(0.15)

    try:
        with loopwarden.guard(mode="record", stall_ms=100) as warden:
            for _ in range(4):
                loop.run_until_complete(step(0))
                time.sleep(0.3)  # no loop runs: not checked, not a stall
                loop.run_until_complete(step(0.03))
    finally:
        loop.close()
    assert stalls(warden) == []


def run_qt_loop(busy_s: float, quit_after_ms: int) -> None:
    """A Qt event loop whose first slot spins ``busy_s``, quit after ``quit_after_ms``."""
    from PySide6.QtCore import QEventLoop, QTimer

    event_loop = QEventLoop()
    QTimer.singleShot(0, lambda: spin_in_qt_slot(busy_s))
    QTimer.singleShot(quit_after_ms, event_loop.quit)
    event_loop.exec()


def test_time_between_two_qt_event_loops_is_not_a_stall(qapp: Any) -> None:
    # As between two qtbot.wait() calls: the Qt heartbeat's timer fires at once
    # when the next event loop starts, late by the time no loop ran.
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        for _ in range(4):
            run_qt_loop(0, 150)
            time.sleep(0.3)
            run_qt_loop(0.03, 150)
    assert stalls(warden) == []


def test_a_stall_as_a_qt_event_loop_starts_again_is_caught(qapp: Any) -> None:
    # The watchdog promises every stall of stall_ms plus one interval (150 ms
    # here); one right at the start of a loop went unseen or was measured with
    # the time before the loop ran.
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        run_qt_loop(0, 100)
        time.sleep(0.3)
        run_qt_loop(STALL_S, 100)
    [stall] = stalls(warden)
    # Measured from when the watchdog saw the loop run: at most one interval late,
    # never with the time no loop ran.
    assert 100 <= stall.details["duration_ms"] < STALL_S * 1000 + 50
    assert stall.stack[-1].function == "spin_in_qt_slot"


def test_busy_but_responsive_qt_loop_is_not_a_stall(qasync_loop: asyncio.AbstractEventLoop) -> None:
    from PySide6.QtCore import QTimer

    # Back-to-back short slots keep the GUI thread busy and responsive. Such a
    # loop can keep the watchdog thread waiting for the GIL for hundreds of
    # milliseconds; the beats the loop records meanwhile show it was fine.
    async def main() -> int:
        done = asyncio.get_running_loop().create_future()
        slices = 0
        end = time.perf_counter() + 1.0

        def work() -> None:
            nonlocal slices
            spin_in_qt_slot(0.0005)
            slices += 1
            if time.perf_counter() >= end and not done.done():
                timer.stop()
                done.set_result(None)

        timer = QTimer()
        timer.setInterval(0)
        timer.timeout.connect(work)
        timer.start()
        await done
        return slices

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        slices = qasync_loop.run_until_complete(main())

    assert slices > 100
    assert stalls(warden) == []


def test_busy_worker_thread_without_a_loop_is_not_a_stall() -> None:
    async def main() -> None:
        await asyncio.to_thread(spin_in_coroutine, STALL_S)
        await asyncio.sleep(0.05)

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        asyncio.run(main())

    assert stalls(warden) == []


def test_probe_thread_busy_without_a_running_qt_loop_is_not_a_stall(qapp: Any) -> None:
    from PySide6.QtCore import QThread

    gui = threading.get_ident()
    threads.add_thread_probe(
        gui, lambda: "Qt event loop" if QThread.currentThread().loopLevel() > 0 else None
    )
    try:
        with loopwarden.guard(mode="record", stall_ms=100) as warden:
            qapp.processEvents()
            spin_in_qt_slot(STALL_S)  # no event loop runs: nothing to stall
            qapp.processEvents()
    finally:
        threads.remove_thread_probe(gui)

    assert stalls(warden) == []


def test_non_blocking_form_awaiting_sleep_is_not_a_stall() -> None:
    async def main() -> None:
        await asyncio.sleep(STALL_S)

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        asyncio.run(main())

    assert stalls(warden) == []


def test_stall_inside_an_already_reported_call_is_not_reported_twice() -> None:
    async def main() -> None:
        await asyncio.sleep(0.05)
        time.sleep(STALL_S)
        await asyncio.sleep(0.05)

    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        asyncio.run(main())

    assert [f.primitive for f in warden.findings] == ["time.sleep"]


def test_allowance_for_stall_silences_it() -> None:
    with loopwarden.guard(
        mode="record",
        stall_ms=100,
        allow=[(f"{__name__}:spin_in_coroutine", "known slow start-up step")],
    ) as warden:
        asyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    assert stalls(warden) == []


def test_paused_debugger_is_not_a_stall() -> None:
    import io
    import pdb

    read_end, write_end = os.pipe()
    commands = os.fdopen(read_end)

    def resume_later() -> None:
        time.sleep(STALL_S)  # the debugger stays paused this long
        os.write(write_end, b"continue\n")

    async def main() -> None:
        await asyncio.sleep(0.05)
        debugger = pdb.Pdb(stdin=commands, stdout=io.StringIO(), nosigint=True)
        debugger.use_rawinput = False
        threading.Thread(target=resume_later).start()
        with loopwarden.allow_blocking(reason="the debugger reads its commands"):
            debugger.set_trace()
            pass  # pdb stops here until "continue" arrives
        await asyncio.sleep(0.05)

    try:
        with loopwarden.guard(mode="record", stall_ms=100) as warden:
            asyncio.run(main())
    finally:
        commands.close()
        os.close(write_end)

    assert stalls(warden) == []


# -- modes -----------------------------------------------------------------------


def test_raise_mode_records_the_stall_without_raising_in_the_loop() -> None:
    with loopwarden.guard(mode="raise", stall_ms=100) as warden:
        asyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    assert len(stalls(warden)) == 1


def test_warn_mode_issues_a_warning_at_the_culprit_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BlockingCallWarning)
        with loopwarden.guard(mode="warn", stall_ms=100) as warden:
            asyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    assert len(stalls(warden)) == 1
    [warning] = [w for w in caught if issubclass(w.category, BlockingCallWarning)]
    assert warning.filename == __file__
    assert "stalled" in str(warning.message)


def test_on_finding_callback_gets_the_stall() -> None:
    seen: list[Finding] = []
    with loopwarden.guard(mode="record", stall_ms=100, on_finding=seen.append):
        asyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    assert [f.family for f in seen] == ["stall"]


# -- lifecycle and configuration ---------------------------------------------------


def test_watchdog_thread_stops_when_the_warden_exits() -> None:
    assert watchdog_threads() == []
    with loopwarden.guard(mode="record", stall_ms=100):
        [thread] = watchdog_threads()
        assert thread.daemon
    assert watchdog_threads() == []
    assert watchdog.current_watchdog() is None


def test_loop_start_hook_is_removed_when_the_watchdog_stops() -> None:
    import asyncio.events

    original = asyncio.events._set_running_loop
    with loopwarden.guard(mode="record", stall_ms=100):
        assert asyncio.events._set_running_loop is not original
    assert asyncio.events._set_running_loop is original


def test_watchdog_is_off_unless_requested() -> None:
    with loopwarden.guard(mode="record") as warden:
        assert watchdog_threads() == []
    assert warden.stall_ms is None


def test_activate_deactivate_start_and_stop_the_watchdog() -> None:
    warden = loopwarden.activate(mode="record", stall_ms=150)
    try:
        assert len(watchdog_threads()) == 1
        dog = watchdog.current_watchdog()
        assert dog is not None and dog.stall_ms == 150
        # Reconfiguring keeps one watchdog, with the new threshold.
        loopwarden.activate(mode="record", stall_ms=120)
        assert len(watchdog_threads()) == 1
        assert watchdog.current_watchdog() is dog and dog.stall_ms == 120
    finally:
        loopwarden.deactivate()
    assert watchdog_threads() == []
    assert warden.stall_ms == 150


def test_nested_wardens_share_one_watchdog_with_the_smallest_threshold() -> None:
    with loopwarden.guard(mode="record", stall_ms=200):
        with loopwarden.guard(mode="record", stall_ms=100):
            dog = watchdog.current_watchdog()
            assert dog is not None and dog.stall_ms == 100
            assert len(watchdog_threads()) == 1
        assert dog.stall_ms == 200
        with loopwarden.guard(mode="record"):
            assert watchdog.current_watchdog() is dog
    assert watchdog_threads() == []


def test_guard_entered_inside_a_running_loop_watches_it_at_once() -> None:
    async def main() -> dict[int, int]:
        with loopwarden.guard(mode="record", stall_ms=100):
            dog = watchdog.current_watchdog()
            assert dog is not None
            return dog.heartbeats()

    assert threading.get_ident() in asyncio.run(main())


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "100", True])
def test_invalid_stall_ms_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="positive number of milliseconds"):
        loopwarden.guard(stall_ms=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("150", 150.0), (" 80.5 ", 80.5), ("off", None), ("0", None), ("", None), (None, None)],
)
def test_parse_stall_ms(text: str | None, expected: float | None) -> None:
    assert watchdog.parse_stall_ms(text) == expected


def test_parse_stall_ms_rejects_garbage_with_advice() -> None:
    with pytest.raises(ConfigError, match="'off'"):
        watchdog.parse_stall_ms("fast")


def test_culprit_is_the_function_stack_seen_most_often() -> None:
    from loopwarden.findings import StackFrame
    from loopwarden.watchdog.findings import Sample, culprit

    def sample(function: str, line: int) -> Sample:
        stack = (
            StackFrame("app.py", 10, "main", "app"),
            StackFrame("app.py", line, function, "app"),
        )
        return Sample(stack, f"app.py:{line} in {function}", ("app.py", line, "app"), False, False)

    # The spin moves between lines; the one-off read does not win.
    samples = [sample("spin", 20), sample("read", 30), sample("spin", 21), sample("spin", 21)]
    chosen = culprit(samples)
    assert chosen is not None
    assert chosen.stack[-1] == StackFrame("app.py", 21, "spin", "app")
    assert culprit([]) is None


def test_watchdog_left_running_at_exit_stops_cleanly(tmp_path: Any) -> None:
    import subprocess
    import textwrap

    script = tmp_path / "left_running.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, threading, time
            import loopwarden, loopwarden.threads, loopwarden.watchdog
            from PySide6.QtCore import QCoreApplication, QEventLoop, QThread, QTimer

            app = QCoreApplication([])
            gui = threading.get_ident()
            loopwarden.threads.add_thread_probe(
                gui, lambda: "Qt" if QThread.currentThread().loopLevel() > 0 else None)
            warden = loopwarden.activate(mode="record", stall_ms=100)
            asyncio.run(asyncio.sleep(0.1))
            loop = QEventLoop()
            QTimer.singleShot(150, loop.quit)
            loop.exec()
            print("beats", sum(loopwarden.watchdog.current_watchdog().heartbeats().values()))
            # No deactivate(): the exit hook stops the watchdog.
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert int(result.stdout.split()[-1]) > 0


@pytest.mark.asyncio
async def test_stall_inside_a_guard_entered_on_the_running_loop() -> None:
    # The guard is entered and left inside one step of the loop (as in a
    # pytest-asyncio test): the stall is still going on when it exits.
    with loopwarden.guard(mode="record", stall_ms=100) as warden:
        spin_in_coroutine(STALL_S)

    [stall] = stalls(warden)
    assert stall.stack[-1].function == "spin_in_coroutine"
    assert stall.thread_id == threading.get_ident()


# -- what the watchdog keeps --------------------------------------------------


class _Tracked:
    """An object a stalled frame holds as a local (weakly referenced by the test)."""


def test_the_frames_a_stall_was_sampled_from_are_let_go() -> None:
    # The watchdog's snapshot of every thread's frames (sys._current_frames())
    # held its own thread's frame too, a reference cycle: every frame in it
    # kept its locals until the next cyclic collection. In superqt's suite a
    # timer the test expected gone fired into a widget the test had deleted.
    import gc
    import weakref

    refs: list[weakref.ref[_Tracked]] = []

    def hold_an_object_through_a_stall() -> None:
        held = _Tracked()
        refs.append(weakref.ref(held))
        # Sampled while this frame, with `held`, is on the stack.
        asyncio.run(stall_then_settle(lambda: spin_in_coroutine(STALL_S)))

    gc.collect()
    gc.disable()  # only reference counting frees it now, as between two collections
    try:
        with loopwarden.guard(mode="record", stall_ms=100) as warden:
            hold_an_object_through_a_stall()
            time.sleep(0.3)  # (off the loop) several watchdog checks after the stall
            alive_under_the_guard = refs[0]() is not None
        assert len(stalls(warden)) == 1
        assert not alive_under_the_guard
    finally:
        gc.enable()
