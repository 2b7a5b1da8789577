"""Cost of knowing who holds a ``threading.Lock``, before and after, in one run.

Self-deadlock detection (``loopwarden.lock_owners``) remembers the owner of a
Lock a guarded thread takes, and every *other* acquisition of a lock that has
an owner entry forgets it. The off-loop path of the lock rules, taken by every
thread of the process, gains one test (``if not held``, or ``id(lock) in held``
while a guarded thread has entries). This script compares two source trees
(default: ``--before`` a checkout of main, ``--after`` this one) by running
each in its own interpreter, alternately, round after round, so that load from
other processes hits both alike::

    python benchmarks/bench_lock_owners.py --before /path/to/main/src
    python benchmarks/bench_lock_owners.py --before /path/to/main/src --quick   # smoke run

Rows: calls off the loop (this thread runs no loop) with no owner entry at
all, and while a guarded loop thread has an entry for some other lock (what
an app that ever took a lock on its loop thread sees); calls on the loop
thread. Each cell is the median over the rounds of the CPU time per call
(``time.thread_time_ns``), loop overhead included. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def _acquire_release(lock: Any, n: int) -> None:
    for _ in range(n):
        lock.acquire()
        lock.release()


def _with(lock: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            pass


def _ns(func: Callable[[Any, int], None], lock: Any, n: int) -> float:
    start = time.thread_time_ns()
    func(lock, n)
    return (time.thread_time_ns() - start) / n


def _in_worker(func: Callable[[Any, int], None], lock: Any, n: int) -> float:
    # The main thread's path differs (Ctrl-C safety): most threads are workers.
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(_ns(func, lock, n)))
    thread.start()
    thread.join()
    return result[0]


def _loop_with_an_entry() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """A loop thread that took a Lock once (its owner entry stays until another taker)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    private = threading.Lock()

    async def take() -> None:
        with private:
            pass

    asyncio.run_coroutine_threadsafe(take(), loop).result(10)
    loop._bench_private_lock = private  # type: ignore[attr-defined]  # keep it alive
    return loop, thread


def _child(n: int) -> dict[str, float]:
    import loopwarden

    cells: dict[str, float] = {}
    lock, rlock = threading.Lock(), threading.RLock()
    for config in ("unpatched", "loopwarden"):
        guard = loopwarden.guard(mode="record") if config == "loopwarden" else None
        if guard is not None:
            guard.__enter__()
        try:
            for where, timer in (("worker thread", _in_worker), ("main thread", _ns)):
                cells[f"off loop ({where}), Lock acquire+release | {config}"] = timer(
                    _acquire_release, lock, n
                )
                cells[f"off loop ({where}), with Lock | {config}"] = timer(_with, lock, n)
                cells[f"off loop ({where}), with RLock | {config}"] = timer(_with, rlock, n)
            loop, thread = _loop_with_an_entry()
            for where, timer in (("worker thread", _in_worker), ("main thread", _ns)):
                cells[f"off loop ({where}), with Lock, a loop thread has an entry | {config}"] = (
                    timer(_with, lock, n)
                )
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

            async def on_loop(config: str = config) -> None:
                cells[f"on loop, Lock acquire+release | {config}"] = _ns(_acquire_release, lock, n)
                cells[f"on loop, with Lock | {config}"] = _ns(_with, lock, n)

            asyncio.run(on_loop())
        finally:
            if guard is not None:
                guard.__exit__(None, None, None)
    return cells


def _run_child(src: str, n: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(n)],
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout.decode().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    parser.add_argument("--before", default=here, help="src/ of the tree to compare against")
    parser.add_argument("--after", default=here, help="src/ of this tree (default)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 21)")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run for CI")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child)))
        return 0
    rounds, n = (1, 200) if args.quick else (args.rounds or 21, 20000)
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for tree, src in (("before", args.before), ("after", args.after)):
            for key, value in _run_child(src, n).items():
                samples.setdefault(key, {}).setdefault(tree, []).append(value)
    print(
        f"Python {platform.python_version()} on {sys.platform}, rounds={rounds}, n={n}\n"
        f"before: {args.before}\nafter:  {args.after}\n"
    )
    print("| call | config | before ns | after ns | after - before |")
    print("|---|---|---:|---:|---:|")
    for key, trees in samples.items():
        label, _, config = key.partition(" | ")
        before = statistics.median(trees["before"])
        after = statistics.median(trees["after"])
        print(f"| {label} | {config} | {before:.0f} | {after:.0f} | {after - before:+.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
