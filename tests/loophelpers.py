"""Helpers for tests: run code on a real event loop or in a real worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_loop(func: Callable[[], T]) -> T:
    """Call ``func`` inside a coroutine on a fresh asyncio loop (a guarded thread)."""

    async def main() -> T:
        return func()

    return asyncio.run(main())


def run_in_worker(func: Callable[[], T]) -> T:
    """Call ``func`` in a plain worker thread (never guarded) and return its result."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


def run_in_executor_from_loop(func: Callable[[], T]) -> T:
    """Call ``func`` through ``asyncio.to_thread`` from a running loop."""

    async def main() -> T:
        return await asyncio.to_thread(func)

    return asyncio.run(main())


@contextmanager
def rescue_after(
    seconds: float, is_stuck: Callable[[], bool], rescue: Callable[[], object]
) -> Iterator[None]:
    """Call ``rescue()`` from another thread if ``is_stuck()`` still holds after ``seconds``.

    Tests of certain deadlocks use it so that a regression hangs for seconds,
    not forever: it releases the lock or completes the future the test waits on.
    """
    import loopwarden

    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds) and is_stuck():
            rescue()

    thread = threading.Thread(target=watch, daemon=True)
    with loopwarden.allow_blocking(reason="test watchdog"):
        thread.start()
    try:
        yield
    finally:
        done.set()
        with loopwarden.allow_blocking(reason="test watchdog"):
            thread.join(seconds)


@contextmanager
def python_frames_entered(files: set[str]) -> Iterator[list[str]]:
    """The functions of ``files`` entered in this thread while the block runs.

    ``sys.setprofile`` sees every Python call: an empty list says that no
    Python wrapper of those modules ran (a C wrapper decided every call).
    """
    import sys

    entered: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename in files:
            entered.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        yield entered
    finally:
        sys.setprofile(None)
