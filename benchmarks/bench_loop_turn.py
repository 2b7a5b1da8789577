"""Cost per event-loop turn of the selector rules (the running loop's own selector exemption).

asyncio's loop calls ``self._selector.select(timeout)`` on the loop thread on
every turn, and ``select``/``epoll``/``selectors`` are patched: each turn goes
through two wrappers (the selector and the poll object under it), and the
selector rule compares the selector with the running loop's by identity.
This times one await of a future resolved by a timer callback (two loop
turns: the timer's, then the coroutine's), in three configurations,
interleaved round by round so that load from other processes hits each alike:

* unpatched (no warden),
* ``guard(mode="record")`` with every rule,
* ``guard(mode="record")`` without the selector rules (the ``polling`` family module).

Run from the repository root::

    python benchmarks/bench_loop_turn.py            # 21 rounds, ~20 seconds
    python benchmarks/bench_loop_turn.py --quick    # smoke run for CI

Figures are printed, never asserted: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

import loopwarden
from loopwarden import families
from loopwarden.blocking import polling


async def _turns(n: int) -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(n):
        future = loop.create_future()
        loop.call_later(0.0, future.set_result, None)  # a timer: the loop waits in select()
        await future
    return (time.perf_counter() - start) / n * 1e9


@contextlib.contextmanager
def _without_selector_rules() -> Iterator[object]:
    """``guard(mode="record")`` with the ``polling`` family module left out."""
    saved = families.default_rules()
    # The registry reads default_rules() when it installs its patches.
    families._cache = tuple(rule for rule in saved if rule not in polling.RULES)
    try:
        with loopwarden.guard(mode="record") as warden:
            yield warden
    finally:
        families._cache = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few rounds)")
    args = parser.parse_args(argv)
    rounds, n = (3, 2_000) if args.quick else (21, 20_000)

    configs: dict[str, Callable[[], AbstractContextManager[object]]] = {
        "unpatched": nullcontext,
        "loopwarden, every rule": lambda: loopwarden.guard(mode="record"),
        "loopwarden, without the selector rules": _without_selector_rules,
    }
    results: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, make in configs.items():
            with make():
                results[name].append(asyncio.run(_turns(n)))
    base = statistics.median(results["unpatched"])
    print(f"Awaiting a timer, two loop turns ({rounds} interleaved rounds of {n} awaits, medians):")
    print("| configuration | ns per await | added ns |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {median - base:+.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
