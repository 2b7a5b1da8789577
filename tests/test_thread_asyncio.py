"""Family ``thread``, asyncio half: real loops, real worker threads, real sockets.

Wrong-thread calls run in ``"raise"`` mode, so the unsafe call is never made;
the worker catches the error and the test checks the finding.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import loopwarden
from loopwarden import BlockingCallError, native
from loopwarden.affinity import checks


def _in_thread(func: Callable[[], Any], name: str = "worker-1") -> list[BaseException]:
    """Run ``func`` in a real thread, return what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            func()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return errors


async def _from_worker(func: Callable[[], Any]) -> list[BaseException]:
    """From a coroutine: run ``func`` in a worker thread while the loop keeps running."""
    return await asyncio.to_thread(_in_thread, func)


def _run(coro: Callable[[], Coroutine[Any, Any, Any]], mode: str = "raise") -> loopwarden.Warden:
    with loopwarden.guard(mode=mode) as warden:  # type: ignore[arg-type]
        asyncio.run(coro())
    return warden


def _noop(*args: Any) -> None:
    return None


async def _sleeper() -> None:
    await asyncio.sleep(0)


# -- wrong thread: reported ----------------------------------------------------

LOOP_CALLS: dict[str, Callable[[asyncio.AbstractEventLoop], Any]] = {
    "loop.call_soon": lambda loop: loop.call_soon(_noop),
    "loop.call_later": lambda loop: loop.call_later(1, _noop),
    "loop.call_at": lambda loop: loop.call_at(loop.time() + 1, _noop),
    "loop.create_task": lambda loop: loop.create_task(_sleeper()),
    "loop.run_in_executor": lambda loop: loop.run_in_executor(None, _noop),
    "loop.stop": lambda loop: loop.stop(),
}


@pytest.mark.filterwarnings("ignore:coroutine '_sleeper' was never awaited")
@pytest.mark.parametrize("name", sorted(LOOP_CALLS))
def test_loop_method_from_a_worker_is_reported(name: str) -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors.extend(await _from_worker(lambda: LOOP_CALLS[name](loop)))

    warden = _run(main)
    assert len(errors) == 1 and isinstance(errors[0], BlockingCallError)
    finding = errors[0].finding
    assert finding is warden.findings[0] and len(warden.findings) == 1
    assert (finding.primitive, finding.family) == (name, "thread")
    assert finding.thread_name == "worker-1"
    assert finding.details["owner_thread"] == "MainThread"
    assert finding.details["owner_thread_id"] == threading.main_thread().ident
    assert finding.stack[-1].function.endswith("<lambda>")
    assert "call_soon_threadsafe" in finding.suggestion
    assert "run_coroutine_threadsafe" in finding.suggestion
    assert "Wrong-thread call" in finding.message and "'worker-1'" in finding.message


def test_add_reader_and_add_writer_from_a_worker_are_reported() -> None:
    errors: list[BaseException] = []
    a, b = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors.extend(await _from_worker(lambda: loop.add_reader(a.fileno(), _noop)))
        errors.extend(await _from_worker(lambda: loop.add_writer(b.fileno(), _noop)))

    try:
        warden = _run(main)
    finally:
        a.close()
        b.close()
    assert [f.primitive for f in warden.findings] == ["loop.add_reader", "loop.add_writer"]
    assert all(isinstance(e, BlockingCallError) for e in errors)


FUTURE_CALLS: dict[str, Callable[[asyncio.Future[Any]], Any]] = {
    "asyncio.Future.set_result": lambda fut: fut.set_result(1),
    "asyncio.Future.set_exception": lambda fut: fut.set_exception(ValueError()),
    "asyncio.Future.cancel": lambda fut: fut.cancel(),
    "asyncio.Future.add_done_callback": lambda fut: fut.add_done_callback(_noop),
}


@pytest.mark.parametrize("name", sorted(FUTURE_CALLS))
def test_future_method_from_a_worker_is_reported(name: str) -> None:
    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        errors = await _from_worker(lambda: FUTURE_CALLS[name](fut))
        assert isinstance(errors[0], BlockingCallError)
        assert not fut.done()  # raise mode: the unsafe call was not made
        fut.cancel()

    warden = _run(main)
    assert [f.primitive for f in warden.findings] == [name]


def test_task_cancel_from_a_worker_is_reported() -> None:
    async def main() -> None:
        task = asyncio.ensure_future(asyncio.sleep(10))
        errors = await _from_worker(task.cancel)
        assert isinstance(errors[0], BlockingCallError)
        task.cancel()

    warden = _run(main)
    assert [f.primitive for f in warden.findings] == ["asyncio.Task.cancel"]


def test_asyncio_primitives_from_a_worker_are_reported() -> None:
    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        event = asyncio.Event()
        lock = asyncio.Lock()
        condition = asyncio.Condition()
        # Bind each to the running loop the way real code does: a waiter.
        getter = asyncio.ensure_future(queue.get())
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        await lock.acquire()
        contender = asyncio.ensure_future(lock.acquire())  # waits: binds the lock

        async def wait_for_notify() -> None:
            async with condition:
                await condition.wait()

        notified = asyncio.ensure_future(wait_for_notify())
        await asyncio.sleep(0)
        await condition.acquire()  # held by the loop thread while the worker notifies
        errors: list[BaseException] = []
        errors += await _from_worker(lambda: queue.put_nowait(1))
        errors += await _from_worker(event.set)
        errors += await _from_worker(lock.release)

        def notify() -> None:
            condition.notify_all()

        errors += await _from_worker(notify)
        assert all(isinstance(e, BlockingCallError) for e in errors)
        getter.cancel()
        waiter.cancel()
        notified.cancel()
        contender.cancel()
        condition.release()
        lock.release()

    warden = _run(main)
    assert [f.primitive for f in warden.findings] == [
        "asyncio.Queue.put_nowait",
        "asyncio.Event.set",
        "asyncio.Lock.release",
        "asyncio.Condition.notify_all",
    ]


def test_transport_write_and_close_from_a_worker_are_reported() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    async def main() -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        errors = await _from_worker(lambda: writer.write(b"hello"))
        errors += await _from_worker(writer.transport.close)
        assert all(isinstance(e, BlockingCallError) for e in errors)
        writer.close()
        await writer.wait_closed()

    try:
        warden = _run(main)
    finally:
        server.close()
    assert [f.primitive for f in warden.findings] == [
        "asyncio.Transport.write",
        "asyncio.Transport.close",
    ]
    assert "<lambda>" in warden.findings[0].user_caller  # the writer.write line


# -- right thread, or safe hand-over: silent --------------------------------------


def test_threadsafe_handover_is_silent() -> None:
    results: list[Any] = []

    async def double(x: int) -> int:
        return 2 * x

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        done = asyncio.Event()

        def worker() -> None:
            loop.call_soon_threadsafe(fut.set_result, "from worker")
            results.append(asyncio.run_coroutine_threadsafe(double(21), loop).result(5))
            loop.call_soon_threadsafe(done.set)

        assert await _from_worker(worker) == []
        results.append(await fut)
        await done.wait()
        results.append(await loop.run_in_executor(None, lambda: "executor result"))
        results.append(await asyncio.to_thread(lambda: "to_thread result"))

    warden = _run(main)
    assert warden.findings == []
    assert results == [42, "from worker", "executor result", "to_thread result"]


def test_calls_on_the_loop_thread_are_silent() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 1)
        loop.call_later(0, _noop)
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(await fut)
        assert await queue.get() == 1
        await loop.create_task(_sleeper())

    assert _run(main).findings == []


def test_a_loop_that_is_not_running_is_free_to_set_up() -> None:
    loop = asyncio.new_event_loop()
    ran: list[str] = []
    with loopwarden.guard(mode="raise") as warden:
        # Set up from the main thread and from a worker, before run.
        loop.call_soon(ran.append, "main")
        assert _in_thread(lambda: loop.call_soon(ran.append, "worker")) == []
        loop.run_until_complete(asyncio.sleep(0))
        # Stopped again: free to use from a worker.
        assert _in_thread(lambda: loop.call_soon(ran.append, "after")) == []
    loop.close()
    assert warden.findings == []
    assert ran == ["main", "worker"]


def test_a_worker_that_owns_its_own_loop_is_silent() -> None:
    def worker() -> int:
        async def main() -> int:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            loop.call_soon(fut.set_result, 5)
            queue: asyncio.Queue[int] = asyncio.Queue()
            queue.put_nowait(await fut)
            return await queue.get()

        return asyncio.run(main())

    async def outer() -> None:
        assert await asyncio.to_thread(worker) == 5

    assert _run(outer).findings == []


def test_a_worker_using_the_main_loop_from_its_own_loop_is_reported() -> None:
    async def main() -> None:
        outer_loop = asyncio.get_running_loop()

        def worker() -> None:
            async def inner() -> None:
                outer_loop.call_soon(_noop)  # the other loop's method

            asyncio.run(inner())

        errors = await _from_worker(worker)
        assert isinstance(errors[0], BlockingCallError)

    assert [f.primitive for f in _run(main).findings] == ["loop.call_soon"]


# -- modes, allowances, no duplicates ---------------------------------------------


def test_record_mode_makes_the_call_and_reports_it_once() -> None:
    async def main() -> None:
        event = asyncio.Event()
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        # Event.set resolves the waiter's future, which schedules a callback:
        # one wrong-thread call, one finding.
        assert await _from_worker(event.set) == []
        await asyncio.wait_for(waiter, 5)

    warden = _run(main, mode="record")
    assert [f.primitive for f in warden.findings] == ["asyncio.Event.set"]


def test_warn_mode_warns_at_the_workers_line() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert await _from_worker(lambda: loop.call_soon(_noop)) == []
        assert [w.category for w in caught] == [loopwarden.BlockingCallWarning]
        assert caught[0].filename == __file__

    assert len(_run(main, mode="warn").findings) == 1


def _allowed_worker_call(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon(_noop)


def test_allowances_cover_thread_findings() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        def scoped() -> None:
            with loopwarden.allow_blocking("thread", reason="the loop is idle in this test"):
                loop.call_soon(_noop)

        assert await _from_worker(scoped) == []
        assert await _from_worker(lambda: _allowed_worker_call(loop)) == []

    spec = (f"{__name__}:_allowed_worker_call", "known race, fixed in the next release")
    with loopwarden.guard(mode="raise", allow=[spec]) as warden:
        asyncio.run(main())
    assert warden.findings == []


def test_no_warden_no_check() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await _from_worker(lambda: loop.call_soon(_noop)) == []

    asyncio.run(main())


# -- other loops -------------------------------------------------------------------


def test_uvloop_wrong_thread_reported_and_threadsafe_silent() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uvloop.Loop)
        errors = await _from_worker(lambda: loop.call_soon(_noop))
        assert isinstance(errors[0], BlockingCallError)

        async def coro() -> str:
            return "ok"

        assert await _from_worker(lambda: loop.call_soon_threadsafe(_noop)) == []
        result: list[str] = []
        assert (
            await _from_worker(
                lambda: result.append(asyncio.run_coroutine_threadsafe(coro(), loop).result(5))
            )
            == []
        )
        assert result == ["ok"]
        loop.call_soon(_noop)  # its own thread

    with loopwarden.guard(mode="raise") as warden:
        uvloop.run(main())
    assert [f.primitive for f in warden.findings] == ["loop.call_soon"]
    assert warden.findings[0].details["owner_thread"] is None  # uvloop keeps no thread id
    assert "another thread" in warden.findings[0].message


def test_env_activation_reports_thread_findings(tmp_path: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await _from_worker(lambda: loop.call_later(1, _noop)) == []

    warden = loopwarden.activate_from_env({"LOOPWARDEN": "record"}, start_dir=tmp_path)
    assert warden is not None
    try:
        asyncio.run(main())
    finally:
        loopwarden.deactivate()
    assert [(f.primitive, f.family) for f in warden.findings] == [("loop.call_later", "thread")]


def test_every_asyncio_rule_target_exists() -> None:
    import sys

    from loopwarden.affinity.asyncio_rules import RULES
    from loopwarden.registry import _resolve

    pytest.importorskip("qasync")
    pytest.importorskip("uvloop")
    pytest.importorskip("PySide6.QtAsyncio")
    missing = [rule.target for rule in RULES if _resolve(rule) is None]
    expected = [] if sys.version_info >= (3, 13) else ["asyncio.queues:Queue.shutdown"]
    assert missing == expected


# -- the C wrapper (LoopMethod): the call on the loop's own thread, decided in C ------------

needs_speedups = pytest.mark.skipif(
    native.speedups is None, reason="the C extension is not built for this interpreter"
)


@needs_speedups
def test_the_c_wrapper_is_installed_and_looks_like_the_method() -> None:
    targets = [
        (asyncio.Queue, "put_nowait"),
        (asyncio.Event, "set"),
        (asyncio.Future, "set_result"),
        (asyncio.base_events.BaseEventLoop, "call_soon"),
    ]
    originals = {(cls, name): cls.__dict__[name] for cls, name in targets}
    with loopwarden.guard(mode="record"):
        for (cls, name), original in originals.items():
            wrapper = cls.__dict__[name]
            assert type(wrapper).__name__ == "LoopMethod", (cls, name)
            assert inspect.unwrap(wrapper) is inspect.unwrap(original)  # (call_soon: 2 layers)
            assert wrapper.__name__ == name
            assert wrapper.__loopwarden_rule__.family == "thread"
        assert inspect.signature(asyncio.Queue.put_nowait) == inspect.signature(
            originals[(asyncio.Queue, "put_nowait")]
        )
        assert asyncio.Queue.put_nowait.__doc__ == originals[(asyncio.Queue, "put_nowait")].__doc__
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original


def test_coroutine_functions_keep_a_python_wrapper() -> None:
    rule = loopwarden.Rule(target="asyncio.queues:Queue.get", family="thread", suggestion="-")

    async def get(self: Any) -> None:
        return None

    assert checks._c_loop_method(rule, get, get, bound=True) is None
    assert checks._c_loop_method(rule, len, len, bound=True) is None  # a builtin function


class _OddBound:
    """A loop-bound object whose ``_loop`` raises what it is told to, once."""

    error: BaseException | None = None

    @property
    def _loop(self) -> Any:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return None  # bound to no loop yet: free to use

    def put_nowait(self, item: object) -> object:
        return item


def test_an_object_without_a_loop_and_a_ctrl_c_in_its_loop_property() -> None:
    rule = loopwarden.Rule(target="x:_OddBound.put_nowait", family="thread", suggestion="-")
    wrap = checks.asyncio_owned(bound=True)
    wrapper = wrap(rule, _OddBound.put_nowait)
    odd = _OddBound()

    async def main() -> None:
        with loopwarden.guard(mode="record") as warden:
            assert wrapper(odd, 1) == 1  # no loop yet
            odd.error = KeyboardInterrupt()
            with pytest.raises(KeyboardInterrupt):
                wrapper(odd, 2)
            odd.error = ValueError("no loop today")
            with pytest.raises(ValueError):
                wrapper(odd, 3)  # raised to the caller, as the Python wrapper's read does
            with pytest.raises(AttributeError):
                wrapper(object(), 4)  # no _loop at all, as the method itself would
        assert warden.findings == []

    asyncio.run(main())


def test_calls_on_the_loop_leak_no_reference() -> None:
    import sys

    async def main() -> tuple[tuple[int, int], tuple[int, int]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int] = asyncio.Queue()

        def counts() -> tuple[int, int]:
            for n in range(1000):
                queue.put_nowait(n)
                queue.get_nowait()
            return sys.getrefcount(loop), sys.getrefcount(queue)

        with loopwarden.guard(mode="record") as warden:
            counts()
            first, second = counts(), counts()
        assert warden.findings == []
        return first, second

    first, second = asyncio.run(main())
    assert first == second


@needs_speedups
def test_bound_lookups_stay_in_c() -> None:
    # asyncio's C Task and Future look `loop.call_soon` up bound, and so does any call
    # with *args (qasync's call_soon calls `self.call_later(0, callback, *args)`): a
    # bound method of the C wrapper keeps its C path, with no Python frame of ours.
    import sys

    python_wrappers: set[Any] = set()  # filled in once the guard installed the wrappers
    entered: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in python_wrappers:
            entered.append(frame.f_back.f_code.co_name if frame.f_back else "?")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int] = asyncio.Queue()
        args = (1,)
        sys.setprofile(profile)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # the C Task: loop.call_soon(step, context=...)
            loop.call_later(0, print, *args)  # LOAD_ATTR + CALL_FUNCTION_EX: bound
            bound = queue.put_nowait
            bound(*args)
            future = loop.create_future()
            future.set_result(None)
            await future
        finally:
            sys.setprofile(None)

    with loopwarden.guard(mode="record") as warden:
        for cls, name in [
            (asyncio.base_events.BaseEventLoop, "call_soon"),
            (asyncio.base_events.BaseEventLoop, "call_later"),
            (asyncio.Future, "set_result"),
            (asyncio.Queue, "put_nowait"),
        ]:
            wrapper = cls.__dict__[name]
            assert type(wrapper).__name__ == "LoopMethod", (cls, name)
            python_wrappers.add(wrapper.python_wrapper.__code__)
        asyncio.run(main())
    assert warden.findings == []
    assert entered == []


@needs_speedups
def test_a_bound_c_wrapper_can_be_weakly_referenced() -> None:
    # weakref.WeakMethod (signal libraries hold slots this way) takes a weak
    # reference to the bound method's function: the C wrapper, now.
    import weakref

    async def main() -> list[int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        weak = weakref.WeakMethod(queue.put_nowait)
        method = weak()
        assert method is not None
        method(7)
        return [queue.get_nowait()]

    with loopwarden.guard(mode="record") as warden:
        assert type(asyncio.Queue.__dict__["put_nowait"]).__name__ == "LoopMethod"
        assert asyncio.run(main()) == [7]
    assert warden.findings == []
