"""loopwarden.signal_watch: a signal heard on a thread of our own (real signals, real pipe)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from loopwarden import signal_watch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the signal watcher is POSIX only")


@pytest.fixture
def python_handler() -> Iterator[list[int]]:
    """A Python SIGTERM handler (only those write the wakeup fd); what it received."""
    received: list[int] = []
    _join_stopped_watchers()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal_watch.stop()
        signal.signal(signal.SIGTERM, previous)
        _join_stopped_watchers()


def _watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "loopwarden-signal-watch"]


def _join_stopped_watchers() -> None:
    # stop() does not wait for the thread (it returns on end-of-file by itself):
    # one stopped by an earlier test may still be on its way out, and would be
    # taken for this test's watcher.
    if not signal_watch._state:
        for thread in _watchers():
            thread.join(30)
        assert _watchers() == []


def _watcher() -> threading.Thread:
    (thread,) = _watchers()
    return thread


def test_the_callback_runs_on_the_watchers_thread(python_handler: list[int]) -> None:
    heard = threading.Event()
    threads: list[str] = []

    def callback() -> None:
        threads.append(threading.current_thread().name)
        heard.set()

    assert signal_watch.start(signal.SIGTERM, callback)
    os.kill(os.getpid(), signal.SIGTERM)
    assert heard.wait(30)
    assert threads == ["loopwarden-signal-watch"]
    assert python_handler == [signal.SIGTERM]  # the Python handler runs as before


def test_a_signal_still_in_the_pipe_after_stop_is_not_acted_on(python_handler: list[int]) -> None:
    # The second SIGTERM's byte waits in the pipe while the callback of the
    # first one runs; stop() comes first: that byte belongs to the past.
    calls: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def callback() -> None:
        calls.append(1)
        inside.set()
        release.wait(30)

    assert signal_watch.start(signal.SIGTERM, callback)
    watcher = _watcher()
    os.kill(os.getpid(), signal.SIGTERM)
    assert inside.wait(30)
    os.kill(os.getpid(), signal.SIGTERM)  # written to the pipe by Python's C handler at once
    signal_watch.stop()
    release.set()
    watcher.join(30)
    assert not watcher.is_alive()  # it read the end of the pipe and returned
    assert calls == [1]


def test_stop_gives_the_wakeup_fd_back(python_handler: list[int]) -> None:
    assert signal_watch.start(signal.SIGTERM, lambda: None)
    watcher = _watcher()
    signal_watch.stop()
    watcher.join(30)
    assert not watcher.is_alive()
    assert signal.set_wakeup_fd(-1) == -1
