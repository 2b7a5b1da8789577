"""The guarded thread's fast verdict: calls that do not block skip the full check.

A rule's ``precheck`` decides "does not block" before the warden, allowance
and finding machinery. These tests watch, with a profiler hook, which of the
engine's functions a call enters on a real asyncio loop thread: an uncontended
lock or a non-blocking queue call must never reach ``_checked_call``, while a
call that does block still takes the full path and is reported.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import loopwarden
from loopwarden import engine


def _checked_calls_during(func: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``func`` on a loop thread under guard(mode="record"); count full checks."""
    count = 0
    checked = engine._checked_call.__code__

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call" and frame.f_code is checked:
            count += 1

    async def main() -> Any:
        sys.setprofile(profile)
        try:
            return func()
        finally:
            sys.setprofile(None)

    with loopwarden.guard(mode="record") as warden:
        result = asyncio.run(main())
    assert warden.findings == []
    return result, count


@pytest.mark.parametrize("factory", [threading.Lock, threading.RLock], ids=["Lock", "RLock"])
def test_uncontended_lock_never_reaches_the_full_check(factory: Callable[[], Any]) -> None:
    lock = factory()

    def use() -> tuple[bool, bool]:
        assert lock.acquire()
        lock.release()
        with lock:
            held = lock.locked() if hasattr(lock, "locked") else True
        return held, lock.acquire(blocking=False)

    (held, taken), checks = _checked_calls_during(use)
    lock.release()
    assert held and taken
    assert checks == 0


def test_non_blocking_queue_calls_never_reach_the_full_check() -> None:
    q: queue.Queue[int] = queue.Queue(maxsize=1)

    def use() -> tuple[int, bool, bool]:
        q.put_nowait(1)
        full = False
        try:
            q.put_nowait(2)
        except queue.Full:
            full = True
        item = q.get_nowait()
        empty = False
        try:
            q.get_nowait()
        except queue.Empty:
            empty = True
        return item, full, empty

    (item, full, empty), checks = _checked_calls_during(use)
    assert (item, full, empty) == (1, True, True)
    assert checks == 0


def test_blocking_queue_calls_that_can_proceed_at_once_skip_the_full_check() -> None:
    q: queue.Queue[int] = queue.Queue()
    sq: queue.SimpleQueue[int] = queue.SimpleQueue()

    def use() -> tuple[int, int]:
        q.put(3)
        sq.put(4)
        return q.get(), sq.get(timeout=5)

    result, checks = _checked_calls_during(use)
    assert result == (3, 4)
    assert checks == 0


def test_a_call_that_would_block_still_takes_the_full_path_and_is_reported() -> None:
    lock = threading.Lock()
    q: queue.Queue[int] = queue.Queue()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(10)

    peer = threading.Thread(target=holder)
    peer.start()
    assert held.wait(10)

    async def main() -> None:
        # From a thread: the loop itself is stuck in the contended `with lock:`.
        threading.Timer(0.05, release.set).start()
        with lock:  # contended: the precheck fails, the full path reports it
            pass
        with pytest.raises(queue.Empty):
            q.get(timeout=0.01)  # empty: the attempt fails, reported, then times out

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    peer.join(10)
    assert [f.primitive for f in warden.findings] == [
        "threading.Lock.__enter__",
        "queue.Queue.get",
    ]


def test_a_precheck_with_bad_arguments_leaves_the_error_to_the_original() -> None:
    q: queue.Queue[int] = queue.Queue()

    async def main() -> str:
        with pytest.raises(TypeError) as caught:
            q.get(True, 1, "extra")  # type: ignore[call-arg]
        return str(caught.value)

    with loopwarden.guard(mode="record") as warden:
        message = asyncio.run(main())
    assert "get()" in message
    assert warden.findings == []


def test_logging_to_an_in_memory_stream_never_reaches_the_full_check() -> None:
    stream = io.StringIO()
    log = logging.getLogger("loopwarden.tests.fast_verdict")
    handler = logging.StreamHandler(stream)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        _, checks = _checked_calls_during(lambda: log.info("tick %d", 1))
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "tick 1\n"
    assert checks == 0


def test_logging_to_a_file_still_takes_the_full_path(tmp_path: Path) -> None:
    log = logging.getLogger("loopwarden.tests.fast_verdict.file")
    handler = logging.FileHandler(tmp_path / "app.log")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    async def main() -> None:
        log.info("written to disk")

    try:
        with loopwarden.guard(mode="record") as warden:
            asyncio.run(main())
    finally:
        log.removeHandler(handler)
        handler.close()
    assert "logging.Handler.handle" in [f.primitive for f in warden.findings]
    assert (tmp_path / "app.log").read_text() == "written to disk\n"


def test_allow_blocking_is_decided_before_the_loop_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    # allow_blocking is task-local: inside it the engine must not even ask
    # which loop guards the thread (the lookup that precedes any frame walk).
    lookups = 0
    real = engine.guarded_loop

    def counting() -> object | None:
        nonlocal lookups
        lookups += 1
        return real()

    monkeypatch.setattr(engine, "guarded_loop", counting)

    async def main() -> tuple[int, int]:
        nonlocal lookups
        with loopwarden.allow_blocking("time.sleep", reason="test"):
            lookups = 0
            time.sleep(0.001)
            inside = lookups
        lookups = 0
        time.sleep(0.001)  # outside: checked, and reported
        return inside, lookups

    with loopwarden.guard(mode="record") as warden:
        inside, outside = asyncio.run(main())
    assert [f.primitive for f in warden.findings] == ["time.sleep"]
    assert (inside, outside) == (0, 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_from_a_worker_knows_its_main_thread() -> None:
    # The lock wrappers read the main thread's id from a cell (Ctrl-C safety is
    # for the main thread only); in a child forked from a worker, the worker is
    # the child's main thread, and the cell must say so.
    from loopwarden import threads

    status: list[int] = []

    def fork_and_wait() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:
            ok = threads.main_ident[0] == threading.get_ident() == threading.main_thread().ident
            os._exit(0 if ok else 1)
        status.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

    with loopwarden.guard(mode="record"):
        worker = threading.Thread(target=fork_and_wait)
        worker.start()
        worker.join(30)
    assert status == [0]
    assert threads.main_ident[0] == threading.main_thread().ident  # the parent's is unchanged
