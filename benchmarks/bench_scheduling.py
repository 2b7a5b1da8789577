"""Cost of recording where callbacks are scheduled (issue 15.3), per scheduled callback.

Run from the repository root::

    python benchmarks/bench_scheduling.py           # full run: 21 interleaved rounds
    python benchmarks/bench_scheduling.py --quick   # smoke run for CI

With a warden active, inside a running asyncio loop (a guarded thread), each
row times ``N`` schedulings through loopwarden's scheduling wrapper
(:mod:`loopwarden.scheduling`) and through the method it wraps, in
interleaved rounds; cells are medians of ns per scheduled callback, loop
overhead included, and "added" is the wrapper's own cost. Times are this
thread's CPU time (``time.thread_time_ns``), which other processes on a shared
machine disturb less than wall time. Handles are
cancelled and callbacks removed, so no callback runs. (Other patches on the
same methods, such as the thread-affinity checks, are outside both columns.)
Off a guarded thread, and with no warden active, the wrapper only tests a
list and the running loop before calling the original.

Figures are printed, never asserted: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import loopwarden


def _user_callback() -> None:
    pass


def _scheduling_wrapper(method: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(loopwarden's scheduling wrapper, the original it calls) found under ``method``."""
    func = method
    while func is not None:
        code = getattr(func, "__code__", None)
        if code is not None and code.co_filename.endswith("scheduling.py"):
            return func, func.__wrapped__
        func = getattr(func, "__wrapped__", None)
    raise RuntimeError(f"{method!r} is not wrapped: is a warden active?")


def _soon(call: Callable[..., Any], loop: Any, cb: Any, n: int) -> None:
    for _ in range(n):
        call(loop, cb).cancel()


def _later(call: Callable[..., Any], loop: Any, cb: Any, n: int) -> None:
    for _ in range(n):
        call(loop, 10, cb).cancel()


def _done(call: Callable[..., Any], fut: Any, cb: Any, n: int) -> None:
    for _ in range(n):
        call(fut, cb)
        fut.remove_done_callback(cb)


async def _measure(rounds: int, n: int) -> dict[str, tuple[list[float], list[float]]]:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    soon = _scheduling_wrapper(asyncio.BaseEventLoop.call_soon)
    later = _scheduling_wrapper(asyncio.BaseEventLoop.call_later)
    done = _scheduling_wrapper(asyncio.Future.add_done_callback)
    cases: dict[str, tuple[Any, tuple[Callable[..., Any], Callable[..., Any]], Any, Any]] = {
        "call_soon(user function)": (_soon, soon, loop, _user_callback),
        "call_soon(builtin) from user code: trampoline": (_soon, soon, loop, time.monotonic),
        "call_later(partial) from user code: trampoline": (
            _later,
            later,
            loop,
            functools.partial(time.monotonic),
        ),
        "add_done_callback(builtin): trampoline": (_done, done, fut, time.monotonic),
    }
    results: dict[str, tuple[list[float], list[float]]] = {c: ([], []) for c in cases}
    for _ in range(rounds):
        for name, (run, (wrapped, original), target, cb) in cases.items():
            for column, call in enumerate((original, wrapped)):
                start = time.thread_time_ns()
                run(call, target, cb, n)
                results[name][column].append((time.thread_time_ns() - start) / n)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (no useful figures)")
    args = parser.parse_args()
    rounds, n = (2, 200) if args.quick else (21, 20000)
    with loopwarden.guard(mode="record"):
        results = asyncio.run(_measure(rounds, n))
    print(f"{rounds} interleaved rounds of {n} schedulings; median ns per scheduled callback")
    print("| scheduling (warden active, guarded thread) | original ns | wrapped ns | added ns |")
    print("|---|---:|---:|---:|")
    for name, (plain, wrapped) in results.items():
        a, b = statistics.median(plain), statistics.median(wrapped)
        print(f"| {name} | {a:.0f} | {b:.0f} | {b - a:+.0f} |")


if __name__ == "__main__":
    main()
