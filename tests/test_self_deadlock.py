"""A ``threading.Lock`` taken again by the loop thread that holds it: a certain self-deadlock.

Real locks, real threads, a real asyncio loop. Every scenario that would hang
if the detection regressed has a watchdog: a timer thread releases the lock
after :data:`WATCHDOG` seconds (legal for a Lock), so the blocked acquire
returns and the test fails on its assertions instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

import loopwarden
from loophelpers import rescue_after
from loopwarden import BlockingCallError, Finding, lock_owners

pytestmark = pytest.mark.timeout(120)

#: Seconds before a watchdog releases a lock a regression would wait on forever.
WATCHDOG = 10.0

_MODES = ["raise", "warn", "record"]


def _watchdog(lock: Any) -> AbstractContextManager[None]:
    """Release ``lock`` from another thread if the test is still blocked after WATCHDOG."""
    return rescue_after(WATCHDOG, lock.locked, lock.release)


def _on_loop(
    mode: str, body: Callable[[], object], before: Callable[[], object] | None = None
) -> tuple[object, list[Finding]]:
    """Run ``body`` on a running asyncio loop under ``guard(mode=mode)``.

    ``before`` runs first, on the loop thread, before ``body``.
    """

    async def main() -> object:
        if before is not None:
            await asyncio.to_thread(before)  # off the loop: its own waits are not findings
        return body()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", loopwarden.BlockingCallWarning)
        with loopwarden.guard(mode=mode) as warden:  # type: ignore[arg-type]
            result = asyncio.run(main())
    return result, list(warden.findings)


def _hold_in_thread(lock: Any, until_reported: bool = True) -> Callable[[], None]:
    """Hold ``lock`` in a worker until the returned function is called.

    With ``until_reported``, the worker also lets go once the active warden
    has a finding (the loop thread is then waiting for this lock).
    """
    taken, release = threading.Event(), threading.Event()
    warden = loopwarden.current_warden() if until_reported else None

    def holder() -> None:
        with lock:
            taken.set()
            for _ in range(int(WATCHDOG / 0.01)):
                if release.wait(0.01) or (warden is not None and warden.findings):
                    break

    thread = threading.Thread(target=holder, daemon=True)
    with loopwarden.allow_blocking(reason="test setup"):
        thread.start()
        assert taken.wait(WATCHDOG)

    def let_go() -> None:
        release.set()
        with loopwarden.allow_blocking(reason="test teardown"):
            thread.join(WATCHDOG)

    return let_go


_FORMS: dict[str, Callable[[Any], object]] = {
    "acquire()": lambda lock: lock.acquire(),
    "acquire(True, -1)": lambda lock: lock.acquire(True, -1),
    "acquire(timeout=-1)": lambda lock: lock.acquire(timeout=-1),
    "with lock": lambda lock: lock.__enter__(),  # what `with lock:` calls
}


def _taken_again(form: str) -> Callable[[], object]:
    lock = threading.Lock()
    again = _FORMS[form]

    def body() -> object:
        with _watchdog(lock), lock:  # the first acquisition, on the loop thread
            try:
                again(lock)
            except BlockingCallError as error:
                return error
            return None  # the watchdog let it through; `with` releases it

    return body


@pytest.mark.parametrize("form", list(_FORMS))
@pytest.mark.parametrize("mode", _MODES)
def test_taking_a_held_lock_again_on_the_loop_thread_raises_in_every_mode(
    mode: str, form: str
) -> None:
    error, findings = _on_loop(mode, _taken_again(form))
    assert isinstance(error, BlockingCallError), f"{form} in {mode} mode did not raise"
    finding = error.finding
    assert finding.primitive in ("threading.Lock.acquire", "threading.Lock.__enter__")
    assert finding.details["deadlock"] is True
    assert finding.details["hangs_forever"] is True
    assert finding.details["self_held"] is True
    # Where the lock was first taken: the `with lock:` line in _taken_again's body.
    held_since = finding.details["held_since"]
    assert held_since.startswith(f"{__file__}:") and held_since.endswith("body")
    assert "This will deadlock: this thread already holds this threading.Lock" in finding.message
    assert "threading.RLock" in finding.message
    assert "Another thread holds" not in finding.message
    assert findings == [finding]


def test_with_statement_nested_through_a_helper_raises() -> None:
    # The usual shape: a locked function calls another that takes the same lock.
    lock = threading.Lock()

    def helper() -> None:
        with lock:
            pass

    def body() -> object:
        with _watchdog(lock), lock:
            try:
                helper()
            except BlockingCallError as error:
                return error
            return None

    error, _ = _on_loop("record", body)
    assert isinstance(error, BlockingCallError)
    assert error.finding.primitive == "threading.Lock.__enter__"
    assert error.finding.details["self_held"] is True
    assert error.finding.user_caller.endswith("in helper") or "helper" in error.finding.caller


def test_off_the_loop_a_self_held_lock_is_not_checked() -> None:
    # A worker thread (no loop) waits on its own lock: not loopwarden's business.
    lock = threading.Lock()
    outcome: list[object] = []

    def worker() -> None:
        lock.acquire()
        releaser = threading.Timer(0.05, lock.release)  # another thread lets it go
        releaser.start()
        try:
            outcome.append(lock.acquire())  # blocks until the timer releases
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            outcome.append(error)
        finally:
            releaser.join(WATCHDOG)
            lock.release()

    async def main() -> None:
        await asyncio.to_thread(worker)

    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(main())
    assert outcome == [True]
    assert warden.findings == []


def test_a_lock_held_by_another_thread_is_a_plain_finding() -> None:
    lock = threading.Lock()

    def body() -> object:
        got = lock.acquire()  # the holder lets go once this is reported
        lock.release()
        return got

    got, findings = _on_loop("record", body, before=lambda: _hold_in_thread(lock))
    assert got is True
    (finding,) = findings
    assert finding.primitive == "threading.Lock.acquire"
    assert "deadlock" not in finding.details
    assert "Another thread holds this lock" in finding.message


def test_a_lock_released_by_the_loop_and_taken_by_another_thread_is_a_plain_finding() -> None:
    # The loop's owner entry outlives its (unwrapped) release: the other
    # thread's acquisition must make it forgotten.
    lock = threading.Lock()

    def body() -> object:
        with lock:
            pass
        _hold_in_thread(lock)  # lets go once the wait below is reported
        with _watchdog(lock), lock:
            return "waited"

    result, findings = _on_loop("record", body)
    assert result == "waited"
    (finding,) = findings
    assert finding.primitive == "threading.Lock.__enter__"
    assert finding.details.keys() <= {"duration_ms"}


def test_a_lock_released_by_another_thread_is_not_the_loops_any_more() -> None:
    # Lock used as a signal: the loop takes it, a worker releases it (legal),
    # a second worker takes it; the loop then waits for that one.
    lock = threading.Lock()

    def body() -> object:
        assert lock.acquire()
        releaser = threading.Thread(target=lock.release)
        with loopwarden.allow_blocking(reason="test setup"):
            releaser.start()
            releaser.join(WATCHDOG)
        _hold_in_thread(lock)  # lets go once the wait below is reported
        with _watchdog(lock):
            got = lock.acquire()
        lock.release()
        return got

    got, findings = _on_loop("record", body)
    assert got is True
    assert [f.details.get("deadlock") for f in findings] == [None]


def test_timed_acquire_of_a_self_held_lock_waits_and_says_why() -> None:
    lock = threading.Lock()

    def body() -> object:
        with lock:
            return lock.acquire(timeout=0.05)

    got, findings = _on_loop("record", body)
    assert got is False  # it waited its timeout, as without loopwarden
    (finding,) = findings
    assert finding.details["self_held"] is True
    assert finding.details["hangs_forever"] is False
    assert "waits its whole timeout and then fails" in finding.message


@pytest.mark.parametrize(
    "attempt",
    [
        lambda lock: lock.acquire(False),
        lambda lock: lock.acquire(blocking=False),
        lambda lock: lock.acquire(timeout=0),
    ],
    ids=["acquire(False)", "blocking=False", "timeout=0"],
)
def test_non_blocking_attempt_on_a_self_held_lock_is_silent(
    attempt: Callable[[Any], object],
) -> None:
    lock = threading.Lock()

    def body() -> object:
        with lock:
            return attempt(lock)

    got, findings = _on_loop("raise", body)
    assert got is False
    assert findings == []


def test_rlock_taken_again_by_its_owner_is_silent() -> None:
    rlock = threading.RLock()

    def body() -> object:
        with rlock, rlock:
            return rlock.acquire() and (rlock.release() or True)

    got, findings = _on_loop("raise", body)
    assert got is True
    assert findings == []


def test_a_lock_with_an_unpatched_bound_acquire_is_not_claimed() -> None:
    # A Condition made before the patches stores the original lock.acquire:
    # an acquisition through it goes unseen, so ownership is not certain.
    lock = threading.Lock()
    cond = threading.Condition(lock)

    def body() -> object:
        # The acquire really waits here (no certain deadlock is claimed), so
        # the rescue is the expected way out, not a regression's: a short one.
        with rescue_after(0.2, lock.locked, lock.release), lock:
            try:
                lock.acquire()  # the rescue releases it
            except BlockingCallError as error:
                return error
            return "waited"

    result, findings = _on_loop("record", body)
    assert result == "waited"
    assert [f.details.get("deadlock") for f in findings] == [None]
    assert cond.acquire is not None  # kept alive until here


def test_owner_entries_are_forgotten_by_other_acquisitions() -> None:
    # A lock the loop took is forgotten once another thread takes it, and the
    # table is pruned of free locks once it grows.
    lock = threading.Lock()
    many = [threading.Lock() for _ in range(lock_owners._PRUNE_AT + 2)]

    def body() -> object:
        with lock:
            pass
        seen = lock in lock_owners.held
        worker = threading.Thread(target=lambda: lock.acquire() and lock.release())
        with loopwarden.allow_blocking(reason="test setup"):
            worker.start()
            worker.join(WATCHDOG)
        return seen

    seen, findings = _on_loop("raise", body)
    assert seen is True
    assert findings == []
    assert lock not in lock_owners.held

    def take_many() -> object:
        for each in many:
            with each:
                pass
        return len(lock_owners.held)

    size, _ = _on_loop("raise", take_many)
    assert size <= lock_owners._PRUNE_AT + 1


def test_an_owner_noted_before_the_patches_were_reinstalled_is_not_believed() -> None:
    # Taken on the loop under one guard; between guards (unpatched) another
    # thread takes it unseen; under the next guard the loop waits for it.
    lock = threading.Lock()

    async def take() -> None:
        with lock:
            pass

    with loopwarden.guard(mode="record"):
        asyncio.run(take())
        assert lock in lock_owners.held
    holder_started = threading.Event()
    let_go = threading.Event()

    def holder() -> None:
        with lock:
            holder_started.set()
            let_go.wait(WATCHDOG)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()  # unpatched: this acquisition forgets nothing
    assert holder_started.wait(WATCHDOG)

    def body() -> object:
        warden = loopwarden.current_warden()
        assert warden is not None
        assert lock not in lock_owners.held  # cleared at installation

        def wake_once_reported() -> None:
            for _ in range(int(WATCHDOG / 0.01)):
                if warden.findings:
                    break
                threading.Event().wait(0.01)
            let_go.set()

        waker = threading.Thread(target=wake_once_reported, daemon=True)
        with loopwarden.allow_blocking(reason="test setup"):
            waker.start()
        with _watchdog(lock), lock:
            return "waited"

    result, findings = _on_loop("record", body)
    thread.join(WATCHDOG)
    assert result == "waited"
    assert [f.details.get("deadlock") for f in findings] == [None]


def test_an_owner_noted_while_another_thread_waited_is_forgotten_once_that_thread_has_it() -> None:
    # A worker starts waiting for the lock; the loop thread then wins it
    # (its owner entry is written), lets go, and the worker gets it. The entry
    # is stale from then on: believing it would call the loop's next legal
    # wait for the worker a self-deadlock, raised in every mode. Which thread
    # wins the free lock is up to the OS, so the race is run until the loop won.
    verdicts: list[str | None] = []

    def attempt() -> None:
        lock = threading.Lock()
        lock.acquire()  # held before the worker waits, with no owner entry
        waiting, worker_has, let_go = threading.Event(), threading.Event(), threading.Event()

        def worker() -> None:
            waiting.set()
            lock.acquire()
            worker_has.set()
            let_go.wait(WATCHDOG)
            lock.release()

        async def main() -> None:
            thread = threading.Thread(target=worker)
            with loopwarden.allow_blocking(reason="test setup"):
                thread.start()
                waiting.wait(WATCHDOG)
            await asyncio.sleep(0.01)  # the worker is inside acquire() by now
            lock.release()
            won = lock.acquire(False)  # the loop races the waiting worker for it
            if won:
                lock.release()
            with loopwarden.allow_blocking(reason="test setup"):
                worker_has.wait(WATCHDOG)
                if won:
                    verdicts.append(lock_owners.acquired_at(lock))
                let_go.set()
                thread.join(WATCHDOG)

        with loopwarden.guard(mode="record") as warden:
            asyncio.run(main())
        assert warden.findings == []

    for _ in range(40):
        attempt()
        if len(verdicts) >= 3:
            break
    if not verdicts:
        pytest.skip("the worker won the lock every time: the race was not reached")
    assert verdicts == [None] * len(verdicts)
