"""Family ``process``, module ``multiprocessing``: queues, pipes, events, locks, pools."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import multiprocessing.pool
import multiprocessing.queues
import multiprocessing.synchronize
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import loopwarden
from loopwarden import BlockingCallError
from rules_support import (
    PEER_TIMEOUT,
    Case,
    CaseTable,
    Peers,
    expect_silent_off_loop,
    expect_silent_on_loop,
    family_tests,
    ignoring,
)

CASES = CaseTable("process", module="multiprocessing")
# spawn: no fork of a multi-threaded test process.
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(scope="module")
def pool() -> Iterator[multiprocessing.pool.Pool]:
    with SPAWN.Pool(1) as workers:
        yield workers


def _fed(q: multiprocessing.queues.Queue[int]) -> multiprocessing.queues.Queue[int]:
    """Put an item and wait (off the loop) until the feeder thread delivered it."""
    q.put(1)
    deadline = time.monotonic() + PEER_TIMEOUT
    while q.empty() and time.monotonic() < deadline:
        time.sleep(0.001)
    return q


@CASES.add("multiprocessing.Queue.get")
def _queue_get(peers: Peers, name: str) -> Case:
    empty: multiprocessing.queues.Queue[int] = SPAWN.Queue()
    full = _fed(SPAWN.Queue())
    return Case(
        lambda: empty.get(),
        unblock=lambda: empty.put(2),
        nonblocking=[
            lambda: full.get(),  # an item is there: returns at once
            ignoring(multiprocessing.queues.Empty)(lambda: empty.get(False)),
            ignoring(multiprocessing.queues.Empty)(lambda: empty.get_nowait()),
            ignoring(multiprocessing.queues.Empty)(lambda: empty.get(timeout=0)),
        ],
    )


@CASES.add("multiprocessing.Queue.put", "multiprocessing.JoinableQueue.put")
def _queue_put(peers: Peers, name: str) -> Case:
    make = SPAWN.JoinableQueue if "Joinable" in name else SPAWN.Queue
    full = make(maxsize=1)
    full.put(1)
    roomy = make(maxsize=1)
    return Case(
        lambda: full.put(2),
        unblock=lambda: full.get(timeout=PEER_TIMEOUT),
        nonblocking=[
            lambda: roomy.put(1),
            ignoring(multiprocessing.queues.Full)(lambda: full.put(3, False)),
            ignoring(multiprocessing.queues.Full)(lambda: full.put_nowait(3)),
        ],
    )


@CASES.add("multiprocessing.JoinableQueue.join")
def _joinable_join(peers: Peers, name: str) -> Case:
    pending = SPAWN.JoinableQueue()
    pending.put(1)
    pending.get(timeout=PEER_TIMEOUT)  # taken, but task_done() not called yet
    done = SPAWN.JoinableQueue()
    return Case(
        lambda: pending.join(), unblock=lambda: pending.task_done(), nonblocking=[done.join]
    )


def _pipe(peers: Peers) -> tuple[multiprocessing.connection.Connection, ...]:
    first, second = SPAWN.Pipe()
    peers.defer(first.close)
    peers.defer(second.close)
    return first, second


_RECEIVE: dict[str, Callable[[multiprocessing.connection.Connection], object]] = {
    "recv": lambda c: c.recv(),
    "recv_bytes": lambda c: c.recv_bytes(),
    "recv_bytes_into": lambda c: c.recv_bytes_into(bytearray(64)),
    "poll": lambda c: c.poll(PEER_TIMEOUT),
}


@CASES.add(*(f"multiprocessing.connection.Connection.{m}" for m in _RECEIVE))
def _connection(peers: Peers, name: str) -> Case:
    receive = _RECEIVE[name.rpartition(".")[2]]
    idle, waker = _pipe(peers)
    ready, feeder = _pipe(peers)
    feeder.send(b"hello")  # pickled: every receive form can read it
    assert ready.poll(PEER_TIMEOUT)
    forms = [lambda: receive(ready)]
    if name.endswith(".poll"):
        forms += [lambda: idle.poll(), lambda: idle.poll(0)]
    return Case(lambda: receive(idle), unblock=lambda: waker.send(b"hello"), nonblocking=forms)


@CASES.add("multiprocessing.Event.wait")
def _event(peers: Peers, name: str) -> Case:
    clear, done = SPAWN.Event(), SPAWN.Event()
    done.set()
    return Case(
        lambda: clear.wait(),
        unblock=clear.set,
        nonblocking=[lambda: done.wait(), lambda: clear.wait(0)],
    )


@CASES.add("multiprocessing.Process.join")
def _process_join(peers: Peers, name: str) -> Case:
    running = SPAWN.Process(target=time.sleep, args=(60,), daemon=True)
    running.start()
    peers.defer(running.join, PEER_TIMEOUT)
    peers.defer(running.terminate)
    finished = SPAWN.Process(target=abs, args=(1,))
    finished.start()
    finished.join(PEER_TIMEOUT)
    return Case(
        lambda: running.join(),
        unblock=running.terminate,
        nonblocking=[lambda: finished.join(), lambda: running.join(0)],
    )


_POOL_CALLS: dict[str, Callable[[multiprocessing.pool.Pool], object]] = {
    "map": lambda p: p.map(abs, [-1, -2]),
    "starmap": lambda p: p.starmap(pow, [(2, 3)]),
    "apply": lambda p: p.apply(abs, (-1,)),
}


@CASES.add(*(f"multiprocessing.pool.Pool.{m}" for m in _POOL_CALLS), nonblocking=False)
def _pool_call(peers: Peers, name: str) -> Case:
    call = _POOL_CALLS[name.rpartition(".")[2]]
    workers = peers.fixture("pool")
    return Case(lambda: call(workers))


@CASES.add("multiprocessing.pool.Pool.join")
def _pool_join(peers: Peers, name: str) -> Case:
    closing = SPAWN.Pool(1)
    peers.defer(closing.join)
    peers.defer(closing.terminate)
    closing.apply_async(sum, (range(3 * 10**7),))  # keeps the worker busy for a while
    closing.close()  # the task still runs: join waits for it and the workers to exit
    gone = SPAWN.Pool(1)
    gone.terminate()  # terminate() joins everything itself
    return Case(lambda: closing.join(), nonblocking=[gone.join])


@CASES.add(*(f"multiprocessing.pool.AsyncResult.{m}" for m in ("get", "wait")))
def _async_result(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    workers = peers.fixture("pool")
    ready = workers.apply_async(abs, (-1,))
    ready.wait(PEER_TIMEOUT)
    pending = workers.apply_async(sum, (range(3 * 10**7),))  # busy a while in the worker
    return Case(
        lambda: getattr(pending, method)(),
        nonblocking=[
            lambda: getattr(ready, method)(),
            ignoring(multiprocessing.TimeoutError)(lambda: getattr(pending, method)(0)),
        ],
    )


# Locks bind ``acquire`` when they are made: these cases make theirs under the guard.
CASES.covered_elsewhere("multiprocessing.Lock.acquire", "multiprocessing.Lock.__enter__")

(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


# -- locks and semaphores -------------------------------------------------------------

_LOCKS: dict[str, Callable[[], object]] = {
    "Lock": SPAWN.Lock,
    "RLock": SPAWN.RLock,
    "Semaphore": lambda: SPAWN.Semaphore(1),
}
_TAKE: dict[str, Callable[[object], object]] = {
    "multiprocessing.Lock.acquire": lambda lock: lock.acquire(),  # type: ignore[attr-defined]
    "multiprocessing.Lock.__enter__": lambda lock: lock.__enter__(),  # type: ignore[attr-defined]
}


def _holder(lock: object) -> tuple[threading.Thread, threading.Event]:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:  # type: ignore[attr-defined]
            held.set()
            release.wait(PEER_TIMEOUT)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(PEER_TIMEOUT)
    return thread, release


@pytest.mark.parametrize("kind", list(_LOCKS))
@pytest.mark.parametrize("primitive", list(_TAKE))
def test_contended_lock_fires_on_the_loop(kind: str, primitive: str) -> None:
    async def take(lock: object) -> None:
        _TAKE[primitive](lock)

    with loopwarden.guard(mode="raise") as warden:
        lock = _LOCKS[kind]()  # made under the guard: its acquire is the patched one
        thread, release = _holder(lock)
        try:
            with pytest.raises(BlockingCallError) as info:
                asyncio.run(take(lock))
        finally:
            release.set()
            thread.join(PEER_TIMEOUT)
    assert info.value.finding.primitive == primitive
    assert warden.findings[0].family == "process"


@pytest.mark.parametrize("kind", list(_LOCKS))
@pytest.mark.parametrize("primitive", list(_TAKE))
def test_uncontended_lock_and_block_false_are_silent(kind: str, primitive: str) -> None:
    with loopwarden.guard(mode="raise"):
        free, busy = _LOCKS[kind](), _LOCKS[kind]()
    thread, release = _holder(busy)
    try:

        def take() -> None:
            _TAKE[primitive](free)
            free.release()  # type: ignore[attr-defined]
            assert not busy.acquire(False)  # type: ignore[attr-defined]
            assert not busy.acquire(timeout=0)  # type: ignore[attr-defined]

        expect_silent_on_loop(take)
    finally:
        release.set()
        thread.join(PEER_TIMEOUT)


@pytest.mark.parametrize("primitive", list(_TAKE))
def test_contended_lock_off_the_loop_is_silent(primitive: str) -> None:
    with loopwarden.guard(mode="raise"):
        lock = SPAWN.Lock()
    thread, release = _holder(lock)
    try:

        def take() -> None:
            _TAKE[primitive](lock)
            lock.release()

        expect_silent_off_loop(take, unblock=release.set)
    finally:
        release.set()
        thread.join(PEER_TIMEOUT)


def test_event_set_from_the_loop_is_silent() -> None:
    # Event.set takes the event's own condition lock: multiprocessing's critical section.
    with loopwarden.guard(mode="raise"):
        event = SPAWN.Event()
    expect_silent_on_loop(event.set)
    assert event.is_set()
