"""Which threads are guarded: the thread on which an event loop runs.

The hot path only asks "is there any running asyncio loop in this thread, or
is this a thread with a probe (the Qt GUI thread)?". Everything else here runs
only once that cheap test has passed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable

from loopwarden import native

__all__ = [
    "add_thread_probe",
    "describe_loop",
    "guarded_loop",
    "guarded_loop_description",
    "main_ident",
    "remove_thread_probe",
    "running_loop",
    "thread_probes",
]


def _running_loop_reader() -> Callable[[], asyncio.AbstractEventLoop | None]:
    """The fastest reader of this thread's running loop that answers as asyncio does."""
    reader = asyncio.events._get_running_loop
    fast = getattr(native.speedups, "running_loop", None)  # CPython 3.10 and 3.11 only
    if fast is None:
        return reader
    try:
        import _asyncio
    except ImportError:  # pragma: no cover - the extension exports none then
        return reader
    # Only while asyncio uses the C pair: the fast reader reads what
    # _asyncio._set_running_loop records, in the thread state. (==, not is: on
    # 3.10 asyncio.events may hold another function object for the same C
    # function of the same module.)
    if reader != _asyncio._get_running_loop:
        return reader
    return fast  # type: ignore[no-any-return]


#: The running loop of *this* thread, or None; in C, never raises. On 3.10 and
#: 3.11, the C extension's reader (no getpid() system call per call, see
#: _speedups.c); elsewhere asyncio's own.
running_loop = _running_loop_reader()

#: The main thread's id, in a cell: read on every lock call, where
#: threading.main_thread() is a Python call. Python runs signal handlers on
#: this thread only. A forked child's main thread is the thread that forked,
#: so the child sets it again.
main_ident: list[int | None] = [threading.main_thread().ident]


def _main_ident_after_fork() -> None:
    main_ident[0] = threading.get_ident()  # the only thread of the child: its main thread


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_main_ident_after_fork)

#: thread id -> callable returning a description of the event loop running on
#: that thread, or None when none runs. Mutated in place, never rebound, so the
#: wrappers can hold a direct reference to it.
thread_probes: dict[int, Callable[[], str | None]] = {}


def add_thread_probe(thread_id: int, probe: Callable[[], str | None]) -> None:
    """Guard ``thread_id`` whenever ``probe()`` describes a running loop."""
    thread_probes[thread_id] = probe


def remove_thread_probe(thread_id: int) -> None:
    """Forget the probe of ``thread_id`` (no error if there is none)."""
    thread_probes.pop(thread_id, None)


def _describe(loop: object) -> str:
    cls = type(loop)
    return f"{cls.__module__}.{cls.__qualname__}"


def _loop_runs_here(loop: object) -> bool:
    # A loop may be *reported* as running in threads where it does not run:
    # PySide6.QtAsyncio leaks a running loop into its executor threads (there
    # it is a QEventLoop, not an asyncio loop at all).
    if not isinstance(loop, asyncio.AbstractEventLoop):
        return False
    owner = getattr(loop, "_thread_id", None)  # set by BaseEventLoop.run_forever
    if owner is not None:
        return bool(owner == threading.get_ident())
    qt_thread = getattr(loop, "thread", None)  # QtAsyncio's loop is a QObject
    qtcore = sys.modules.get("PySide6.QtCore")
    if callable(qt_thread) and qtcore is not None:
        try:
            return bool(qt_thread() is qtcore.QThread.currentThread())
        except Exception:  # noqa: BLE001 - a broken Qt probe must not break the host
            return True
    # uvloop and qasync keep no thread id; neither leaks its loop to workers.
    return True


class _LastLoop(threading.local):
    """The last running loop seen on this thread and whether it runs here."""

    loop: object = None
    runs_here: bool = False


#: Read inline by the lock rules' wrapper (:mod:`loopwarden.lock_wrapper`),
#: which skips the call of :func:`guarded_loop` when the verdict is known.
_last = _LastLoop()
last_loop = _last


def guarded_loop() -> object | None:
    """What guards the current thread, or None when it is not guarded.

    Returns the asyncio loop running in this thread, or the description a
    thread probe gives (the Qt GUI thread), or None: no loop runs here, or the
    running loop only leaked here from another thread. The verdict for a loop
    is kept per thread, so a checked call pays it once per loop.
    Use :func:`describe_loop` to turn the result into text.
    """
    loop = running_loop()
    if loop is not None:
        last = _last
        if loop is not last.loop:
            last.runs_here = _loop_runs_here(loop)
            last.loop = loop
        if last.runs_here:
            return loop
    probe = thread_probes.get(threading.get_ident())
    if probe is None:
        return None
    try:
        return probe()
    except Exception:  # noqa: BLE001 - a broken probe must not break the host
        return None


def describe_loop(guard: object) -> str:
    """Text for what :func:`guarded_loop` returned."""
    if isinstance(guard, str):
        return guard
    return f"asyncio loop {_describe(guard)}"


def guarded_loop_description() -> str | None:
    """Describe the event loop running on the current thread, or return None."""
    guard = guarded_loop()
    return None if guard is None else describe_loop(guard)
