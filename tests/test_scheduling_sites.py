"""Callbacks with no user frame name where they were scheduled (issue 15.3).

Real loops (asyncio, uvloop, qasync) and real blocking calls of a few ms.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from loophelpers import python_frames_entered
from loopwarden import native, scheduling
from loopwarden.affinity import checks
from loopwarden.findings import Finding
from rules_support import run_script

SLEEP = 0.002


def _schedule_sleep_soon() -> None:
    asyncio.get_running_loop().call_soon(time.sleep, SLEEP)


def _findings(main: object, *, mode: str = "record", **options: object) -> list[Finding]:
    with loopwarden.guard(mode=mode, **options) as warden:  # type: ignore[arg-type]
        asyncio.run(main)  # type: ignore[arg-type]
    return list(warden.findings)


async def _run_soon_and_wait() -> None:
    _schedule_sleep_soon()
    await asyncio.sleep(0.02)


def test_call_soon_names_the_scheduling_line() -> None:
    (finding,) = _findings(_run_soon_and_wait())
    assert finding.primitive == "time.sleep"
    assert finding.user_caller.endswith("in _schedule_sleep_soon")
    assert f"{__file__}:" in finding.user_caller
    assert finding.stack[0].function == "_schedule_sleep_soon"  # the site is the stack's root
    assert finding.stack[0].module == __name__
    assert finding.details["scheduled_via"] == "loop.call_soon"
    assert "in a callback scheduled there with loop.call_soon()" in finding.message


def test_call_later_and_call_at_with_partials(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("x", encoding="utf-8")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.001, functools.partial(time.sleep, SLEEP))
        loop.call_at(loop.time(), os.stat, path)
        await asyncio.sleep(0.05)

    found = {f.primitive: f for f in _findings(main())}
    assert found["time.sleep"].details["scheduled_via"] == "loop.call_later"
    assert found["os.stat"].details["scheduled_via"] == "loop.call_at"
    for finding in found.values():
        assert finding.user_caller.endswith("main")  # Python 3.10 has no co_qualname


def test_add_done_callback_names_its_line_and_remove_still_works(tmp_path: Path) -> None:
    with open(tmp_path / "log.txt", "w", encoding="utf-8") as log:

        async def main() -> None:
            fut = asyncio.get_running_loop().create_future()
            fut.add_done_callback(time.sleep)  # removed again below: never runs
            fut.remove_done_callback(time.sleep)
            fut.add_done_callback(functools.partial(print, file=log, flush=True))
            fut.set_result(None)
            await asyncio.sleep(0.02)

        found = _findings(main())
    assert found, "print() to a real file in a done callback blocks"
    assert {f.details.get("scheduled_via") for f in found} == {"Future.add_done_callback"}
    assert all(f.user_caller.endswith("main") for f in found)
    assert "<Future finished result=None>" in (tmp_path / "log.txt").read_text(encoding="utf-8")


def test_a_user_function_callback_keeps_its_own_frame() -> None:
    def nap() -> None:
        time.sleep(SLEEP)

    async def main() -> None:
        asyncio.get_running_loop().call_soon(nap)
        await asyncio.sleep(0.02)

    (finding,) = _findings(main())
    assert "scheduled_via" not in finding.details  # not wrapped: nap's frame says it all
    assert finding.user_caller.endswith("nap")


def test_allowance_on_the_scheduling_function_covers_the_callback() -> None:
    spec = f"{__name__}:_schedule_sleep_soon"
    assert _findings(_run_soon_and_wait(), allow=[(spec, "test")]) == []
    # An allowance elsewhere does not.
    assert len(_findings(_run_soon_and_wait(), allow=[(f"{__name__}:_findings", "x")])) == 1


def test_warn_mode_attributes_the_warning_to_the_scheduling_line() -> None:
    with pytest.warns(loopwarden.BlockingCallWarning) as caught:
        _findings(_run_soon_and_wait(), mode="warn")
    (warning,) = [w for w in caught if issubclass(w.category, loopwarden.BlockingCallWarning)]
    assert warning.filename == __file__
    assert "_schedule_sleep_soon" in str(warning.message)


def test_off_the_loop_nothing_is_wrapped_or_reported() -> None:
    seen: list[object] = []

    def worker() -> None:
        loop = asyncio.new_event_loop()
        try:
            handle = loop.call_soon(time.sleep, 0)
            seen.append(handle._callback)  # type: ignore[attr-defined]
            handle.cancel()
        finally:
            loop.close()

    with loopwarden.guard(mode="record") as warden:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert warden.findings == []
    assert type(seen[0]).__name__ != "Scheduled"  # no loop runs there: no trampoline


def test_uvloop_call_soon_names_the_scheduling_line() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        _schedule_sleep_soon()
        await asyncio.sleep(0.02)

    with loopwarden.guard(mode="record") as warden:
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
    (finding,) = warden.findings
    assert finding.user_caller.endswith("in _schedule_sleep_soon")
    assert finding.details["scheduled_via"] == "loop.call_soon"


# -- the C wrap (ScheduleMethod): asyncio's own scheduling passes with no Python frame ----

needs_speedups = pytest.mark.skipif(
    native.speedups is None, reason="the C extension is not built for this interpreter"
)
#: The Python wrappers the C ones stand for (the loop's selector has wrappers of its own).
_PYTHON_WRAPPERS = {scheduling.__file__, checks.__file__}


@needs_speedups
def test_asyncios_own_scheduling_enters_no_python_frame_of_ours() -> None:
    entered: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        warm = loop.create_future()
        loop.call_soon(_complete, warm)  # classifies its code: user code, no site needed
        await warm
        future = loop.create_future()
        with python_frames_entered(_PYTHON_WRAPPERS) as frames:
            for _ in range(3):
                await asyncio.sleep(0)  # a Task's step: loop.call_soon from C
            loop.call_soon(_complete, future)  # a user function, classified already
            await future  # the Task's wake-up: a builtin bound to the Task
        entered.extend(frames)

    with loopwarden.guard(mode="record") as warden:
        call_soon = asyncio.base_events.BaseEventLoop.__dict__["call_soon"]
        assert type(inspect.unwrap(call_soon, stop=_is_c_wrap)).__name__ == "ScheduleMethod"
        asyncio.run(main())
    assert warden.findings == []
    assert entered == []


def _complete(future: asyncio.Future[None]) -> None:
    future.set_result(None)


def _is_c_wrap(wrapper: object) -> bool:
    return type(wrapper).__name__ == "ScheduleMethod"


class _OddCallback:
    """A callable whose ``__class__`` raises what it is told to (isinstance() asks it)."""

    error: BaseException | None = None

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        if self.error is not None:
            raise self.error
        return _OddCallback

    def __call__(self) -> None:
        return None


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_a_callback_whose_isinstance_raises(implementation: str) -> None:
    # Deciding whether a callback needs a site asks isinstance(), which asks the
    # callback's __class__: an Exception there leaves the call as it is (scheduled,
    # with no site), a KeyboardInterrupt is raised (never swallowed), in C and in Python.
    if implementation == "c" and native.speedups is None:
        pytest.skip("the C extension is not built for this interpreter")
    call_soon = asyncio.base_events.BaseEventLoop.__dict__["call_soon"]
    odd = _OddCallback()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        schedule = loop.call_soon
        if implementation == "python" and native.speedups is not None:
            # The Python wrapper the C one stands for.
            top = asyncio.base_events.BaseEventLoop.__dict__["call_soon"]
            schedule = inspect.unwrap(top, stop=_is_c_wrap).python_wrapper.__get__(loop)
        odd.error = ValueError("odd")
        handle = schedule(odd)
        assert handle._callback is odd  # type: ignore[attr-defined]
        odd.error = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            schedule(odd)
        odd.error = None

    with loopwarden.guard(mode="record") as warden:
        assert asyncio.base_events.BaseEventLoop.__dict__["call_soon"] is not call_soon
        asyncio.run(main())
    assert warden.findings == []


_FOREIGN_SET_RESULT = """
import asyncio, threading, loopwarden

def schedule_foreign(fut):
    asyncio.get_running_loop().call_soon(fut.set_result, 1)

other = asyncio.new_event_loop()
thread = threading.Thread(target=other.run_forever)
thread.start()

async def make():
    return other.create_future()

fut = asyncio.run_coroutine_threadsafe(make(), other).result()

async def main():
    schedule_foreign(fut)
    await asyncio.sleep(0.05)

with loopwarden.guard(mode="record") as warden:
    asyncio.run(main())
other.call_soon_threadsafe(other.stop)
thread.join()
(finding,) = [f for f in warden.findings if f.primitive == "asyncio.Future.set_result"]
print(finding.user_caller)
"""


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_a_bound_c_wrapper_as_callback_gets_its_site(
    implementation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # loop.call_soon(other_loops_future.set_result, 1): the wrong-thread finding names
    # the scheduling line in C as in Python, although the bound method's function is
    # a C wrapper there (its Python wrapper's frames are hidden).
    if implementation == "python":
        monkeypatch.setenv("LOOPWARDEN_PURE_PYTHON", "1")
    assert run_script(_FOREIGN_SET_RESULT).strip().endswith("in schedule_foreign")


class _ClosedLoop:
    calls = 0

    def _check_closed(self) -> None:  # the first thing BaseEventLoop.call_soon does
        self.calls += 1
        raise RuntimeError("Event loop is closed")


def _user_callback() -> None:
    return None


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_a_scheduler_that_raises_is_called_once(implementation: str) -> None:
    # The Python wrapper called the original again after it raised (its call sat
    # inside the try that keeps a broken site lookup from breaking the host).
    if implementation == "c" and native.speedups is None:
        pytest.skip("the C extension is not built for this interpreter")
    fake = _ClosedLoop()
    seen: list[int] = []

    async def main() -> None:
        top = asyncio.base_events.BaseEventLoop.__dict__["call_soon"]
        schedule = inspect.unwrap(top, stop=_is_c_wrap) if native.speedups is not None else top
        if implementation == "python":
            schedule = getattr(schedule, "python_wrapper", schedule)
        for _ in range(2):  # the first call classifies _user_callback's code
            fake.calls = 0
            with pytest.raises(RuntimeError, match="closed"):
                schedule(fake, _user_callback)
            seen.append(fake.calls)

    with loopwarden.guard(mode="record"):
        asyncio.run(main())
    assert seen == [1, 1]


def test_a_futures_add_done_callback_is_wrapped_once() -> None:
    # asyncio.futures.Future is _asyncio.Future where the C module is there: one wrap,
    # not two stacked (both were listed); the pure-Python future gets its own.
    import asyncio.futures

    with loopwarden.guard(mode="record"):
        layers = []
        method: Any = asyncio.Future.__dict__["add_done_callback"]
        while method is not None:
            layers.append(type(method).__name__)
            method = getattr(method, "__wrapped__", None)
        py_future = asyncio.futures._PyFuture.__dict__["add_done_callback"]  # type: ignore[attr-defined]
        assert getattr(py_future, "__wrapped__", None) is not None
    # The thread-affinity check on top, one scheduling wrap, the C method.
    assert len(layers) == 3, layers
    assert layers[-1] == "method_descriptor"
