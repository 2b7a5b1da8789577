"""Ctrl-C at the wrong moment: asynchronous exceptions inside checked calls and guard().

Every test interrupts loopwarden's own code at every program point it passes
(:mod:`interrupts`), then checks that nothing was left behind.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from time import sleep as aliased_sleep  # noqa: F401 - an alias the patches must restore
from types import FrameType
from typing import Any

import pytest

import loopwarden
from interrupts import Point, injection_points, interrupted
from loophelpers import run_in_worker, run_on_loop
from loopwarden import engine, threads, watchdog
from loopwarden import warden as warden_module
from loopwarden.registry import _resolve, registry
from loopwarden.rules import Rule
from loopwarden.watchdog import loop_starts, watcher


def test_interrupt_inside_a_checked_call_never_silences_the_thread() -> None:
    def blocking_call() -> None:
        time.sleep(0.001)

    async def main() -> list[str]:
        failures: list[str] = []
        with loopwarden.guard(mode="record") as warden:
            points = injection_points(blocking_call)
            assert len(points) > 10  # the checked call really was traced
            for point in points:
                failure = interrupted(point, blocking_call)
                if failure:
                    failures.append(failure)
                    continue
                before = len(warden.findings)
                blocking_call()  # must still be reported
                if len(warden.findings) != before + 1:
                    failures.append(f"nothing reported after an interrupt at {point}")
                if threading.get_ident() in engine.calls_in_progress:
                    failures.append(f"call left in progress after an interrupt at {point}")
        return failures

    assert asyncio.run(main()) == []


# -- guard() enter and exit ---------------------------------------------------------


def _snapshot() -> dict[str, Any]:
    """Everything activation changes, by identity: patch targets, hooks, stacks, threads."""
    raw: dict[tuple[int, str], Any] = {}
    for target in [*registry.rules(), *registry._wrap_source()]:
        resolved = _resolve(target)
        if resolved is not None:
            owner, name = resolved
            namespace = owner.__dict__ if isinstance(owner, type) else vars(owner)
            raw[(id(owner), name)] = namespace.get(name, "<missing>")
    raw[(id(globals()), "aliased_sleep")] = globals()["aliased_sleep"]
    raw[(id(asyncio.events), "_set_running_loop")] = asyncio.events._set_running_loop
    return {
        "raw": raw,
        "meta_path": list(sys.meta_path),
        "probes": dict(threads.thread_probes),
        "wardens": list(engine.active_wardens),
        "holders": list(warden_module._holders),
        "patches": list(registry._patches),
        "watchdog": watchdog.current_watchdog(),
        "attached": list(watcher._attached) + list(watcher._retired),
        "watchdog_threads": [t for t in threading.enumerate() if t.name == watcher.THREAD_NAME],
    }


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in before.items():
        if key == "raw":
            changed = [k for k in value if after["raw"].get(k) is not value[k]]
            if changed or after["raw"].keys() != value.keys():
                problems.append(f"{len(changed)} patch targets not restored exactly")
        elif after[key] != value:
            problems.append(f"{key}: {value!r} -> {after[key]!r}")
    return problems


def _held_locks() -> list[str]:
    """loopwarden's locks that another thread cannot take (one left held would deadlock)."""
    locks = {
        "warden state": warden_module._state_lock,
        "registry": registry._lock,
        "watchdog attach": watcher._attach_lock,
        "loop starts": loop_starts._lock,
    }
    held: list[str] = []
    limbo = threading._active_limbo_lock  # type: ignore[attr-defined]
    if getattr(limbo, "_is_owned", getattr(limbo, "locked", bool))():
        # Left held through a patched `with lock:`: no thread can start now.
        return ["threading._active_limbo_lock"]

    def probe() -> None:
        for name, lock in locks.items():
            if lock.acquire(timeout=2):
                lock.release()
            else:
                held.append(name)

    run_in_worker(probe)
    return held


def _guard_works_on_another_thread() -> bool:
    def worker() -> bool:
        with loopwarden.guard(mode="record", stall_ms=50) as warden:
            run_on_loop(lambda: time.sleep(0.001))
        return [f.primitive for f in warden.findings] == ["time.sleep"]

    return run_in_worker(worker)


def _interrupt_cycles(cycle: Callable[[], loopwarden.Warden], points: list[Point]) -> list[str]:
    """Interrupt ``cycle`` (an enter and exit) at each point; what was left behind."""
    failures: list[str] = []
    before = _snapshot()
    for point in points:
        failure = interrupted(point, cycle)
        if failure:
            failures.append(failure)
        left = [w for w in _made_wardens if w._entered]
        _made_wardens.clear()
        if left:
            # Only a Ctrl-C before the first instruction of __exit__ (where no
            # code can catch it) may leave the warden active, and then all of
            # it: exiting again finishes cleanly.
            if not _at_exit_entry(point):
                failures.append(f"warden left active by an interrupt at {point}")
            for warden in left:
                warden.__exit__(None, None, None)
        problems = _differences(before, _snapshot()) + _held_locks()
        if problems:
            failures.append(f"after an interrupt at {point}: {problems}")
            break  # the state is broken: later points would only repeat it
    return failures


def _at_exit_entry(point: Point) -> bool:
    (filename, line, event), _ = point
    code = loopwarden.Warden.__exit__.__code__
    return event == "call" and filename == code.co_filename and line == code.co_firstlineno


_made_wardens: list[loopwarden.Warden] = []


def _guard(**options: Any) -> loopwarden.Warden:
    warden = loopwarden.guard(**options)
    _made_wardens.append(warden)
    return warden


def _cycle(*, replay: bool = True, **options: Any) -> Callable[[], loopwarden.Warden]:
    def cycle() -> loopwarden.Warden:
        if not replay:
            registry._plan = None  # install from scratch, not the last install's replay
        with _guard(**options) as warden:
            pass
        return warden

    return cycle


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("stall_ms", "replay", "in_python"),
    [(None, True, False), (None, True, True), (None, False, False), (50, True, False)],
    ids=["patches-replayed", "patches-replayed-in-python", "patches-from-scratch", "watchdog"],
)
def test_guard_enter_and_exit_are_all_or_nothing_under_ctrl_c(
    stall_ms: float | None, replay: bool, in_python: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every program point of a whole guard() cycle: installing and removing
    # every patch (as the last install left them, and from scratch), the Qt
    # hooks, the watchdog thread. A replay's writes are one C call where the
    # extension is built (no program point inside), so its Python loops, the
    # pure-Python install's, are interrupted too.
    if in_python:
        from loopwarden import registry as registry_module

        monkeypatch.setattr(registry_module, "speedups", None)
    cycle = _cycle(mode="raise", stall_ms=stall_ms, replay=replay)
    points = injection_points(cycle, rounds=1)
    assert len(points) > 200
    assert _interrupt_cycles(cycle, points) == []
    assert _guard_works_on_another_thread()


@pytest.mark.timeout(300)
def test_nested_and_held_guards_are_all_or_nothing_under_ctrl_c() -> None:
    # With the patches held (the pytest plugin) and inside an outer guard
    # with extra rules: the list operations, rule patches and threshold changes.
    extra = Rule(target="json:dumps", family="custom", suggestion="a test rule")
    with loopwarden.keep_installed(), loopwarden.guard(mode="record", stall_ms=80) as outer:
        cycle = _cycle(mode="raise", stall_ms=40, rules=[extra])
        points = injection_points(cycle, rounds=1)
        assert len(points) > 50
        assert _interrupt_cycles(cycle, points) == []
        assert loopwarden.current_warden() is outer
        run_on_loop(lambda: time.sleep(0.001))  # the outer warden still records
        assert [f.primitive for f in outer.findings][-1] == "time.sleep"
    assert _guard_works_on_another_thread()


def _interrupt_thread_start(launched: bool) -> Callable[[FrameType, str, Any], Any]:
    """A tracer raising Ctrl-C in ``Thread.start``: before or after it launches the thread."""
    start_code = threading.Thread.start.__code__

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is not start_code:
            return None
        if not launched and event == "call":
            raise KeyboardInterrupt("injected before the launch")
        if launched and event == "line" and "_started.wait" in _source_line(frame):
            raise KeyboardInterrupt("injected after the launch")
        return tracer

    return tracer


def _source_line(frame: FrameType) -> str:
    import linecache

    return linecache.getline(frame.f_code.co_filename, frame.f_lineno)


def _stop_waits_for_start(launched: bool) -> tuple[bool, bool]:
    """Interrupt a watchdog's start(), then stop it: (waited for the thread, thread left)."""
    dog = watcher.Watchdog(stall_ms=50)
    sys.settrace(_interrupt_thread_start(launched))
    try:
        with pytest.raises(KeyboardInterrupt):
            dog.start()
    finally:
        sys.settrace(None)
    waited: list[str] = []
    wait_code = threading.Event.wait.__code__

    def watch(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is wait_code:
            waited.append("Event.wait")

    sys.setprofile(watch)
    try:
        dog.stop(timeout=30)
    finally:
        sys.setprofile(None)
    thread = dog._start_called
    if thread is not None and thread.ident is not None:
        thread.join(30)
    alive = thread is not None and thread.is_alive()
    return bool(waited), alive


def test_stop_after_ctrl_c_before_the_thread_launched_does_not_wait_for_it() -> None:
    # A Ctrl-C that lands in Thread.start() before the OS thread exists: no
    # thread will ever say it started, so stop() must not wait the timeout out
    # (it did: a Ctrl-C during guard(stall_ms=...) cost 2 s of exit).
    waited, alive = _stop_waits_for_start(launched=False)
    assert not waited
    assert not alive


def test_stop_after_ctrl_c_after_the_launch_waits_for_the_thread_to_come_up() -> None:
    # The other side of the same line: a thread already launched is waited
    # for (it must see the stop request), and none is left running.
    waited, alive = _stop_waits_for_start(launched=True)
    assert waited
    assert not alive
