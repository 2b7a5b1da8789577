"""Hear of a signal on a thread of our own, even while the main thread is blocked.

Python runs a signal handler on the main thread, between two bytecodes. A
SIGTERM that the kernel hands to another thread, or that lands just before
the main thread enters a system call (``epoll_wait`` in an idle asyncio loop,
Qt's ``poll``, which even retries on EINTR), is only handled once the main
thread runs Python code again: in an idle app, minutes later or never.
Without a handler, the default action kills the process at once, so a
handler of ours must not make SIGTERM wait.

The C handler that Python installs writes the signal's number to the wakeup
fd (:func:`signal.set_wakeup_fd`) at once, on whatever thread got the
signal: a daemon thread reading that fd hears of it without the main thread.
Only one wakeup fd exists per process: one the app (or asyncio's
``add_signal_handler``) set first is left alone, since it wakes the app's
loop, and with it the main thread and the handler.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["die_by", "start", "stop"]

#: read fd, write fd, signal number, callback; empty while not watching.
_state: dict[str, Any] = {}
_fork_hook_registered = False


def start(signum: int, callback: Callable[[], None]) -> bool:
    """Call ``callback`` on a thread of ours whenever ``signum`` arrives.

    Main thread only, POSIX only, and only while no other wakeup fd is set.
    The signal must have a Python handler (only those write the wakeup fd).

    Returns:
        True if the signal is watched (already or from now on).
    """
    global _fork_hook_registered
    if _state:
        return True
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return False
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block on it
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        _close(read_fd, write_fd)
        return False
    if previous != -1:
        signal.set_wakeup_fd(previous)  # the app's: it wakes the main thread itself
        _close(read_fd, write_fd)
        return False
    _state.update(read_fd=read_fd, write_fd=write_fd, signum=signum, callback=callback)
    threading.Thread(
        target=_watch,
        args=(read_fd, write_fd, signum, callback),
        name="loopwarden-signal-watch",
        daemon=True,
    ).start()
    if not _fork_hook_registered:
        # A forked child shares the pipe: its signals must not reach our thread.
        os.register_at_fork(after_in_child=_restart_in_child)
        _fork_hook_registered = True
    return True


def stop() -> None:
    """Stop watching and give the wakeup fd back (main thread only)."""
    if not _state or threading.current_thread() is not threading.main_thread():
        return
    write_fd = _state["write_fd"]
    _state.clear()
    with contextlib.suppress(ValueError, OSError):
        current = signal.set_wakeup_fd(-1)
        if current not in (-1, write_fd):
            signal.set_wakeup_fd(current)  # set by someone else since: theirs stays
    # The thread reads end-of-file, closes its end and returns.
    _close(write_fd)


def die_by(signum: int) -> None:
    """End the process by ``signum``'s default action, from any thread.

    :func:`signal.signal` works on the main thread only, so the C library
    resets the action; if that is not possible, the signal is sent to the
    main thread, whose handler then ends the process.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc.signal.restype = ctypes.c_void_p
        libc.signal(signum, None)  # SIG_DFL is the null handler
        os.kill(os.getpid(), signum)
    except (OSError, AttributeError):
        pass
    main = threading.main_thread().ident
    if main is not None:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_kill(main, signum)


def _watch(read_fd: int, write_fd: int, signum: int, callback: Callable[[], None]) -> None:
    number = bytes([signum])
    try:
        while True:
            try:
                data = os.read(read_fd, 512)
            except OSError:
                return
            if not data:
                return  # stop() closed the write end
            # A byte still in the pipe after stop() is a signal of the past:
            # acting on it would judge it by whatever was set up since.
            if number in data and _state.get("write_fd") == write_fd:
                with contextlib.suppress(Exception):  # never an error in the host
                    callback()
    finally:
        _close(read_fd)


def _restart_in_child() -> None:
    if not _state:
        return
    signum, callback = _state["signum"], _state["callback"]
    read_fd, write_fd = _state["read_fd"], _state["write_fd"]
    _state.clear()
    _close(read_fd, write_fd)  # this process's copies; the parent keeps its own
    with contextlib.suppress(ValueError, OSError):
        current = signal.set_wakeup_fd(-1)
        if current not in (-1, write_fd):
            signal.set_wakeup_fd(current)  # not ours any more: leave it as it is
            return
        start(signum, callback)


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
