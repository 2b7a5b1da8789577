"""``future.result()`` on the loop thread when only a callback queued on that loop completes it.

``loop.call_soon_threadsafe(future.set_result, value)`` (or ``call_soon``,
``call_later``) puts the completion in the loop's queue; the loop thread then
waiting on ``future.result()`` can never see it run. Real futures, real
threads, real asyncio and uvloop loops (Qt loops: tests/qt/test_qt_deadlock.py).
A watchdog thread completes the future after :data:`WATCHDOG` seconds, so a
regression fails on its assertions instead of hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

import loopwarden
from loophelpers import rescue_after
from loopwarden import BlockingCallError, Finding

pytestmark = pytest.mark.timeout(120)

WATCHDOG = 10.0
_MODES = ["raise", "warn", "record"]


def _watchdog(future: concurrent.futures.Future[Any]) -> AbstractContextManager[None]:
    """Complete ``future`` from another thread if it is still pending after WATCHDOG."""
    return rescue_after(WATCHDOG, lambda: not future.done(), lambda: future.set_result("watchdog"))


def _from_worker(loop: asyncio.AbstractEventLoop, future: concurrent.futures.Future[Any]) -> None:
    """A worker queues the completion on the loop; the loop does not run meanwhile."""
    worker = threading.Thread(target=lambda: loop.call_soon_threadsafe(future.set_result, 42))
    with loopwarden.allow_blocking(reason="test setup: the loop must not run"):
        worker.start()
        worker.join(WATCHDOG)


_QUEUES: dict[str, Callable[[asyncio.AbstractEventLoop, concurrent.futures.Future[Any]], Any]] = {
    "call_soon_threadsafe from a worker": _from_worker,
    "call_soon": lambda loop, f: loop.call_soon(f.set_result, 42),
    "call_later": lambda loop, f: loop.call_later(0.01, f.set_result, 42),
    "call_soon of a partial": lambda loop, f: loop.call_soon(
        __import__("functools").partial(f.set_result, 42)
    ),
    "set_exception": lambda loop, f: loop.call_soon(f.set_exception, KeyError("k")),
}


def _run(
    mode: str, main: Callable[[], Coroutine[Any, Any, Any]], runner: str = "asyncio"
) -> tuple[Any, list[Finding]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", loopwarden.BlockingCallWarning)
        with loopwarden.guard(mode=mode) as warden:  # type: ignore[arg-type]
            if runner == "uvloop":
                uvloop = pytest.importorskip("uvloop")
                result = uvloop.run(main())
            else:
                result = asyncio.run(main())
    return result, list(warden.findings)


def _queued_then_waited(queue: str) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        _QUEUES[queue](loop, future)
        with _watchdog(future):
            try:
                future.result()
            except BlockingCallError as error:
                outcome: Any = error
            else:
                outcome = "returned"
        await asyncio.sleep(0.05)  # the queued completion runs now
        return outcome, future.done()

    return main


@pytest.mark.parametrize("runner", ["asyncio", "uvloop"])
@pytest.mark.parametrize("queue", list(_QUEUES))
@pytest.mark.parametrize("mode", _MODES)
def test_result_completed_only_by_the_blocked_loop_raises_in_every_mode(
    mode: str, queue: str, runner: str
) -> None:
    if runner == "uvloop" and queue == "call_later":
        pytest.skip("uvloop keeps timers in C: a plain finding (see the next test)")
    (outcome, done), findings = _run(mode, _queued_then_waited(queue), runner)
    assert isinstance(outcome, BlockingCallError), f"{queue} on {runner}, {mode}: {outcome}"
    assert done  # the loop ran the completion afterwards
    finding = outcome.finding
    assert finding.primitive == "concurrent.futures.Future.result"
    assert finding.details == {"deadlock": True, "hangs_forever": True}
    assert "the only completion of this future is a callback queued on this same" in (
        finding.message
    )
    assert findings == [finding]


def test_uvloop_timer_completion_is_a_plain_finding() -> None:
    # uvloop's TimerHandle is C with no readable callback: not detectable.
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_later(0.01, future.set_result, 42)
        with pytest.raises(concurrent.futures.TimeoutError):
            future.result(timeout=0.05)
        return await asyncio.wrap_future(future)

    result, findings = _run("record", main, "uvloop")
    assert result == 42
    assert [f.details.get("deadlock") for f in findings] == [None]


def test_with_a_timeout_it_is_recorded_and_waits() -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon(future.set_result, 42)
        with pytest.raises(concurrent.futures.TimeoutError):
            future.result(timeout=0.05)
        return await asyncio.wrap_future(future)

    result, findings = _run("record", main)
    assert result == 42
    assert [(f.details["deadlock"], f.details["hangs_forever"]) for f in findings] == [
        (True, False)
    ]


@contextmanager
def _once_reported(action: Callable[[], object]) -> Iterator[None]:
    """Run ``action`` in a worker once the active warden has a finding (the loop waits)."""
    warden = loopwarden.current_warden()
    assert warden is not None

    def run() -> None:
        for _ in range(int(WATCHDOG / 0.01)):
            if warden.findings:
                break
            threading.Event().wait(0.01)
        action()

    worker = threading.Thread(target=run, daemon=True)
    with loopwarden.allow_blocking(reason="test setup"):
        worker.start()
    try:
        yield
    finally:
        with loopwarden.allow_blocking(reason="test teardown"):
            worker.join(WATCHDOG)


def test_a_cancelled_completion_is_not_claimed() -> None:
    # Nothing queued will complete it: a plain (endless) wait, which a worker ends.
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon(future.set_result, 42).cancel()
        with _once_reported(lambda: future.set_result("worker")):
            return future.result()

    result, findings = _run("record", main)
    assert result == "worker"
    assert [f.details.get("deadlock") for f in findings] == [None]


def test_a_future_an_executor_runs_is_not_claimed() -> None:
    # RUNNING: a worker has it (and would complete it); a stray queued
    # set_result does not make the wait certain to hang.
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(release.wait, WATCHDOG)
            with loopwarden.allow_blocking(reason="test setup"):
                while not future.running():
                    threading.Event().wait(0.001)
            loop.call_soon(future.set_result, "stray")
            with _once_reported(release.set):
                value = future.result()
        return value

    result, findings = _run("record", main)
    assert result is True
    assert [f.details.get("deadlock") for f in findings] == [None]
    # (the stray set_result then fails in the loop's callback, as it would unguarded)


def test_off_the_loop_waiting_for_a_loop_callback_is_silent() -> None:
    # The intended use: a worker waits while the (running) loop completes it.
    async def main() -> Any:
        loop = asyncio.get_running_loop()

        def worker() -> Any:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            loop.call_soon_threadsafe(future.set_result, 42)
            return future.result(WATCHDOG)

        return await asyncio.to_thread(worker)

    result, findings = _run("raise", main)
    assert result == 42
    assert findings == []


def test_wait_for_futures_all_completed_only_by_the_loop_raises() -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        futures = [concurrent.futures.Future() for _ in range(2)]
        for future in futures:
            loop.call_soon(future.set_result, 1)
        with _watchdog(futures[0]), _watchdog(futures[1]):
            try:
                concurrent.futures.wait(futures)
            except BlockingCallError as error:
                return error
        return None

    error, _ = _run("record", main)
    assert isinstance(error, BlockingCallError)
    assert error.finding.primitive == "concurrent.futures.wait"
    assert error.finding.details["hangs_forever"] is True


@pytest.mark.parametrize("runner", ["asyncio", "uvloop"])
def test_a_completer_passed_as_an_argument_is_not_claimed(runner: str) -> None:
    # The loop will call print(future.set_result), not future.set_result():
    # the future's completion is someone else's, so this is a plain wait.
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon(id, future.set_result)
        with _once_reported(lambda: future.set_result("worker")):
            return future.result()

    result, findings = _run("record", main, runner)
    assert result == "worker"
    assert [f.details.get("deadlock") for f in findings] == [None]
