"""Ctrl-C while a guarded main thread takes a lock never leaves the lock held.

A qasync or asyncio app's loop usually runs on the main thread, which is
where Python runs signal handlers. A ``KeyboardInterrupt`` that appears in
loopwarden's lock wrapper right after the lock was taken, but before the
wrapper returned, reaches the caller as an exception from ``acquire()`` or
``__enter__``: the caller never learns it holds the lock and never releases
it, and the next acquirer (often the interpreter's own shutdown, through the
logging lock) waits forever. Every program point of the guarded lock paths is
interrupted here (:mod:`interrupts`), on the thread that runs the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from interrupts import injection_points, interrupted
from loophelpers import run_in_worker
from loopwarden import lock_wrapper


def _acquire_release(lock: Any) -> None:
    lock.acquire()
    lock.release()


def _with(lock: Any) -> None:
    with lock:
        pass


def _acquire_release_timeout(lock: Any) -> None:
    lock.acquire(True, 5)
    lock.release()


def _acquire_release_keywords(lock: Any) -> None:
    lock.acquire(blocking=True, timeout=-1)
    lock.release()


def _condition_notify(lock: Any) -> None:
    condition = threading.Condition(lock)
    with condition:
        condition.notify()


FORMS: dict[str, Callable[[Any], None]] = {
    "acquire()": _acquire_release,
    "with": _with,
    "acquire(True, 5)": _acquire_release_timeout,
    "acquire(blocking=..., timeout=...)": _acquire_release_keywords,
    "Condition.notify": _condition_notify,
}


def _free(lock: Any) -> bool:
    # Asked from another thread: this one may take an RLock it holds again.
    return run_in_worker(lambda: _take_and_release(lock))


def _take_and_release(lock: Any) -> bool:
    if lock.acquire(False):
        lock.release()
        return True
    return False


@pytest.mark.parametrize("taken_before", [False, True], ids=["new lock", "taken before"])
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.parametrize("form", list(FORMS))
def test_ctrl_c_in_a_guarded_acquire_never_leaves_the_lock_held(
    kind: str, form: str, taken_before: bool
) -> None:
    # A Lock this thread took before has an owner entry, and takes the short
    # path; a new one takes the full path, which writes the entry.
    assert threading.current_thread() is threading.main_thread()
    make = threading.Lock if kind == "Lock" else threading.RLock
    use = FORMS[form]
    locks: list[Any] = []

    def run() -> None:
        lock = make()
        locks.append(lock)
        if taken_before:
            use(lock)
        use(lock)

    async def main() -> list[str]:
        failures: list[str] = []
        with loopwarden.guard(mode="record") as warden:
            points = injection_points(run)
            if not points:
                # All in C (loopwarden._speedups): no Python code to interrupt,
                # nothing between the take and the return. The Python paths
                # are interrupted when the suite runs in pure Python.
                assert lock_wrapper.SPEEDUPS, "the guarded lock path was not traced"
            for point in points:
                failure = interrupted(point, run)
                if failure:
                    failures.append(failure)
                if not _free(locks[-1]):
                    file, line, event = point[0]
                    failures.append(
                        f"lock left held after an interrupt at {Path(file).name}:{line} {event}"
                    )
            assert warden.findings == []  # nothing here blocks
        return failures

    assert asyncio.run(main()) == []
