"""Family ``sync``: locks, conditions, events, semaphores, barriers, queues, threads, futures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process  # its rule patches only modules the app imported
import os
import queue
import threading
import warnings

import pytest

import loopwarden
from loopwarden import BlockingCallError
from rules_support import (
    PEER_TIMEOUT,
    Case,
    CaseTable,
    Peers,
    expect_finding,
    expect_silent_on_loop,
    family_tests,
    ignoring,
)

CASES = CaseTable("sync")


_LOCK_TYPES = {"threading.Lock": threading.Lock, "threading.RLock": threading.RLock}


@CASES.add(
    "threading.Lock.acquire",
    "threading.Lock.__enter__",
    "threading.RLock.acquire",
    "threading.RLock.__enter__",
)
def _lock(peers: Peers, name: str) -> Case:
    kind, _, method = name.rpartition(".")
    lock, free_lock = _LOCK_TYPES[kind](), _LOCK_TYPES[kind]()
    release = peers.hold(lock)  # another thread holds it: contended

    def acquire() -> None:
        lock.acquire()
        lock.release()

    def enter() -> None:
        with lock:
            pass

    def enter_free() -> None:
        with free_lock:
            pass

    def acquire_free() -> None:
        assert free_lock.acquire()
        free_lock.release()

    if method == "acquire":
        return Case(
            acquire,
            unblock=release,
            nonblocking=[
                lambda: lock.acquire(blocking=False),
                lambda: lock.acquire(timeout=0),
                lambda: lock.acquire(False),
                acquire_free,
            ],
        )
    return Case(enter, unblock=release, nonblocking=[enter_free])


@CASES.add("threading.Condition.wait")
def _condition(peers: Peers, name: str) -> Case:
    cond = threading.Condition()

    def wait(timeout: float | None) -> object:
        with cond:
            return cond.wait(timeout)

    return Case(
        lambda: wait(0.05),  # off the loop it simply times out
        nonblocking=[lambda: wait(0), lambda: cond.wait_for(lambda: True, 0)],
    )


@CASES.add("threading.Event.wait")
def _event(peers: Peers, name: str) -> Case:
    event, already_set = threading.Event(), threading.Event()
    already_set.set()
    peers.defer(event.set)
    return Case(
        lambda: event.wait(PEER_TIMEOUT),
        unblock=event.set,
        nonblocking=[lambda: already_set.wait(), lambda: event.wait(0)],
    )


@CASES.add("threading.Semaphore.acquire", "threading.BoundedSemaphore.acquire")
def _semaphore(peers: Peers, name: str) -> Case:
    kind = threading.BoundedSemaphore if "Bounded" in name else threading.Semaphore
    sem, free = kind(1), kind(1)
    sem.acquire()  # counter now zero

    def take_free() -> None:
        assert free.acquire()
        free.release()

    return Case(
        lambda: sem.acquire(),
        unblock=sem.release,
        nonblocking=[
            lambda: sem.acquire(blocking=False),
            lambda: sem.acquire(timeout=0),
            take_free,
        ],
    )


@CASES.add("threading.Barrier.wait")
def _barrier(peers: Peers, name: str) -> Case:
    barrier, single = threading.Barrier(2, timeout=PEER_TIMEOUT), threading.Barrier(1)
    peers.defer(barrier.abort)
    return Case(
        lambda: barrier.wait(),
        unblock=lambda: peers.thread(ignoring(threading.BrokenBarrierError)(barrier.wait)),
        nonblocking=[lambda: single.wait()],  # the last party trips the barrier at once
    )


@CASES.add("queue.Queue.get", "queue.SimpleQueue.get")
def _queue_get(peers: Peers, name: str) -> Case:
    kind = queue.SimpleQueue if "Simple" in name else queue.Queue
    empty, filled = kind(), kind()
    filled.put("item")
    return Case(
        lambda: empty.get(timeout=PEER_TIMEOUT),
        unblock=lambda: empty.put("item"),
        nonblocking=[
            lambda: filled.get(),
            ignoring(queue.Empty)(lambda: empty.get_nowait()),
            ignoring(queue.Empty)(lambda: empty.get(block=False)),
            ignoring(queue.Empty)(lambda: empty.get(True, 0)),
        ],
    )


@CASES.add("queue.Queue.put")
def _queue_put(peers: Peers, name: str) -> Case:
    full, roomy = queue.Queue(maxsize=1), queue.Queue(maxsize=1)
    full.put("item")
    return Case(
        lambda: full.put("more", timeout=PEER_TIMEOUT),
        unblock=full.get,
        nonblocking=[
            lambda: roomy.put("item"),
            ignoring(queue.Full)(lambda: full.put_nowait("more")),
            ignoring(queue.Full)(lambda: full.put("more", block=False)),
            ignoring(queue.Full)(lambda: full.put(item="more", timeout=0)),
        ],
    )


@CASES.add("queue.Queue.join")
def _queue_join(peers: Peers, name: str) -> Case:
    pending, settled = queue.Queue(), queue.Queue()
    pending.put("item")
    settled.put("item")
    settled.get()
    settled.task_done()

    def finish() -> None:
        pending.get()
        pending.task_done()

    return Case(lambda: pending.join(), unblock=finish, nonblocking=[lambda: settled.join()])


@CASES.add("threading.Thread.join")
def _join(peers: Peers, name: str) -> Case:
    stop = threading.Event()
    running = peers.thread(lambda: stop.wait(PEER_TIMEOUT))
    peers.defer(stop.set)  # registered after the thread's join: runs first
    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    return Case(
        lambda: running.join(),
        unblock=stop.set,
        nonblocking=[lambda: finished.join(), lambda: running.join(timeout=0)],
    )


@CASES.add("concurrent.futures.Future.result", "concurrent.futures.Future.exception")
def _future(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    pending, done = concurrent.futures.Future[str](), concurrent.futures.Future[str]()
    done.set_result("value")
    peers.defer(lambda: pending.done() or pending.set_result("late"))
    return Case(
        lambda: getattr(pending, method)(),
        unblock=lambda: pending.set_result("value"),
        nonblocking=[
            lambda: getattr(done, method)(),
            ignoring(TimeoutError, concurrent.futures.TimeoutError)(
                lambda: getattr(pending, method)(timeout=0)
            ),
        ],
    )


@CASES.add("concurrent.futures.wait", "concurrent.futures.as_completed")
def _futures_wait(peers: Peers, name: str) -> Case:
    pending, done = concurrent.futures.Future[str](), concurrent.futures.Future[str]()
    done.set_result("value")
    peers.defer(lambda: pending.done() or pending.set_result("late"))
    if name.endswith("as_completed"):
        return Case(
            lambda: list(concurrent.futures.as_completed([pending, done])),
            unblock=lambda: pending.set_result("value"),
            nonblocking=[lambda: list(concurrent.futures.as_completed([done]))],
        )
    return Case(
        lambda: concurrent.futures.wait([pending, done]),
        unblock=lambda: pending.set_result("value"),
        nonblocking=[
            lambda: concurrent.futures.wait([done]),
            lambda: concurrent.futures.wait(
                [pending, done], return_when=concurrent.futures.FIRST_COMPLETED
            ),
            lambda: concurrent.futures.wait([pending], timeout=0),
        ],
    )


@CASES.add("concurrent.futures.ThreadPoolExecutor.shutdown")
def _thread_pool_shutdown(peers: Peers, name: str) -> Case:
    busy, idle = concurrent.futures.ThreadPoolExecutor(1), concurrent.futures.ThreadPoolExecutor(1)
    stop = threading.Event()
    peers.defer(busy.shutdown)
    peers.defer(stop.set)
    busy.submit(stop.wait, PEER_TIMEOUT)
    return Case(
        lambda: busy.shutdown(),
        unblock=stop.set,
        # `idle` never started a worker: nothing to wait for.
        nonblocking=[lambda: busy.shutdown(wait=False), lambda: idle.shutdown()],
    )


@CASES.add("concurrent.futures.ProcessPoolExecutor.shutdown")
def _process_pool_shutdown(peers: Peers, name: str) -> Case:
    import multiprocessing

    executor = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")
    )
    peers.defer(executor.shutdown)
    assert executor.submit(os.getpid).result(timeout=60) != os.getpid()  # workers started
    unused = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")
    )
    return Case(
        lambda: executor.shutdown(),
        nonblocking=[lambda: executor.shutdown(wait=False), lambda: unused.shutdown()],
    )


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


# -- `with lock:` through a Condition, and the standard library's own locks ----------


def test_with_condition_on_a_contended_lock_fires(peers: Peers) -> None:
    cond = threading.Condition(threading.Lock())
    peers.hold(cond)

    def enter() -> None:
        with cond:
            pass

    finding = expect_finding(enter, "threading.Lock.__enter__")
    assert "holds this lock" in finding.suggestion


def test_stdlib_internal_lock_held_by_another_thread_is_silent(peers: Peers) -> None:
    # A concurrent Future's condition, held by a worker for a moment, is the
    # standard library's own critical section: asyncio.wrap_future takes it
    # on the loop thread. That wait is not the application's.
    future = concurrent.futures.Future[str]()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with future._condition:  # type: ignore[attr-defined]
            held.set()
            release.wait(0.05)

    peers.thread(holder)
    assert held.wait(PEER_TIMEOUT)
    peers.defer(release.set)
    assert expect_silent_on_loop(lambda: future.done()) is False


def test_lock_acquired_by_the_attempt_is_really_held() -> None:
    lock = threading.Lock()
    rlock = threading.RLock()

    def use() -> tuple[bool, bool]:
        with rlock, rlock:  # re-entrant: the attempt succeeds both times
            pass
        assert lock.acquire()
        try:
            return lock.locked(), lock.acquire(blocking=False)
        finally:
            lock.release()

    assert expect_silent_on_loop(use) == (True, False)
    assert not lock.locked()


def test_lock_rules_keep_asyncio_and_logging_silent() -> None:
    import logging

    async def main() -> None:
        lock = threading.Lock()
        for _ in range(20):
            with lock:
                await asyncio.sleep(0)
        logging.getLogger("loopwarden.tests").warning("inside the loop")

    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(main())
    assert warden.findings == []


def test_joining_a_loops_executor_shutdown_thread_is_loop_machinery() -> None:
    # uvloop joins this thread on the loop thread from compiled code (no frame
    # to allow), right after the thread reported back.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        task = loop.run_in_executor(None, release.wait, PEER_TIMEOUT)
        shut_down = loop.create_future()
        thread = threading.Thread(target=loop._do_shutdown, args=(shut_down,))  # type: ignore[attr-defined]
        thread.start()
        thread.join(0.05)  # still shutting the executor down: alive
        assert thread.is_alive()
        release.set()
        await task
        await shut_down
        thread.join()  # what uvloop does next, on the loop thread

    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(main())
    assert warden.findings == []


def test_joining_a_thread_subclass_that_keeps_running_fires(peers: Peers) -> None:
    stop = threading.Event()

    class Worker(threading.Thread):
        def run(self) -> None:
            super().run()  # deletes _target ...
            stop.wait(PEER_TIMEOUT)  # ... but the thread goes on working

    worker = Worker(target=lambda: None, daemon=True)
    worker.start()
    peers.defer(worker.join, PEER_TIMEOUT)
    peers.defer(stop.set)
    expect_finding(lambda: worker.join(), "threading.Thread.join")


# -- futures that can only deadlock -----------------------------------------------


async def _answer() -> int:
    return 42


@pytest.mark.parametrize("step_first", [False, True], ids=["queued", "scheduled"])
@pytest.mark.parametrize("method", ["result", "exception"])
def test_run_coroutine_threadsafe_result_on_its_own_loop_is_a_deadlock(
    method: str, step_first: bool
) -> None:
    async def main() -> BlockingCallError:
        future = asyncio.run_coroutine_threadsafe(_answer(), asyncio.get_running_loop())
        if step_first:
            await asyncio.sleep(0)  # the coroutine's task now exists, still pending
        with pytest.raises(BlockingCallError) as info:
            getattr(future, method)()
        assert await asyncio.wrap_future(future) == 42
        return info.value

    with loopwarden.guard(mode="raise") as warden:
        error = asyncio.run(main())
    finding = error.finding
    assert finding.primitive == f"concurrent.futures.Future.{method}"
    assert finding.details == {"deadlock": True, "hangs_forever": True}
    assert "This will deadlock" in finding.message
    assert "run_coroutine_threadsafe" in finding.suggestion
    assert warden.findings == [finding]


def test_waiting_for_futures_of_the_own_loop_is_a_deadlock() -> None:
    async def main() -> BlockingCallError:
        future = asyncio.run_coroutine_threadsafe(_answer(), asyncio.get_running_loop())
        with pytest.raises(BlockingCallError) as info:
            concurrent.futures.wait([future])
        await asyncio.wrap_future(future)
        return info.value

    with loopwarden.guard(mode="raise"):
        error = asyncio.run(main())
    assert error.finding.primitive == "concurrent.futures.wait"
    assert error.finding.details["deadlock"] is True


def test_other_pending_futures_are_plain_findings(peers: Peers) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(1)
    peers.defer(executor.shutdown)
    stop = threading.Event()
    peers.defer(stop.set)
    future = executor.submit(stop.wait, PEER_TIMEOUT)
    finding = expect_finding(lambda: future.result(), "concurrent.futures.Future.result")
    assert finding.details.keys() <= {"duration_ms"}
    # The suggestion, not the message: the message names the test file, and a
    # checkout path may contain the word.
    assert "deadlock" not in finding.suggestion


def test_run_coroutine_threadsafe_from_a_worker_is_silent() -> None:
    # The intended use: a worker thread hands a coroutine to the loop and waits.
    async def main() -> int:
        loop = asyncio.get_running_loop()

        def worker() -> int:
            return asyncio.run_coroutine_threadsafe(_answer(), loop).result(PEER_TIMEOUT)

        return await asyncio.to_thread(worker)

    with loopwarden.guard(mode="raise") as warden:
        assert asyncio.run(main()) == 42
    assert warden.findings == []


def test_record_mode_still_waits_and_times_out() -> None:
    async def main() -> None:
        future = asyncio.run_coroutine_threadsafe(_answer(), asyncio.get_running_loop())
        with pytest.raises((TimeoutError, concurrent.futures.TimeoutError)):
            future.result(timeout=0.05)
        assert await asyncio.wrap_future(future) == 42

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    assert [f.details.get("deadlock") for f in warden.findings] == [True]


@pytest.mark.parametrize("mode", ["record", "warn"])
def test_a_deadlock_without_timeout_raises_in_every_mode(mode: str) -> None:
    # Letting it proceed would hang for good (the pytest plugin's default mode
    # records and lets calls proceed): the error is the only useful outcome.
    async def main() -> None:
        future = asyncio.run_coroutine_threadsafe(_answer(), asyncio.get_running_loop())
        with pytest.raises(BlockingCallError):
            future.result()
        assert await asyncio.wrap_future(future) == 42

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", loopwarden.BlockingCallWarning)
        with loopwarden.guard(mode=mode) as warden:  # type: ignore[arg-type]
            asyncio.run(main())
    assert [f.details.get("hangs_forever") for f in warden.findings] == [True]


def test_leaving_a_pool_whose_tasks_were_awaited_is_silent() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # the worker may not be idle yet right after the result arrives
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                await loop.run_in_executor(pool, sum, [1, 2])

    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(main())
    assert warden.findings == []
