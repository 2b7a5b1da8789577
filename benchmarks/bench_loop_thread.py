"""Cost of calls that do not block, made ON the guarded (loop) thread.

In a dev build (``LOOPWARDEN=warn``) the GUI/loop thread is the guarded thread,
so every patched call it makes takes loopwarden's on-loop path, even when it
does not block. This script times the common non-blocking calls inside
``asyncio.run`` in three configurations, interleaved round by round so that
load from other processes hits them alike: unpatched, loopwarden active
(``guard(mode="record")``, nothing is reported) and BlockBuster active
(``BlockBuster().activate()``; "raises" when it rejects the call)::

    python benchmarks/bench_loop_thread.py           # 31 interleaved rounds
    python benchmarks/bench_loop_thread.py --quick   # smoke run for CI, < 1 s

Each cell is the median over the rounds of the loop thread's CPU time
(``time.thread_time_ns``) per call, loop overhead included (identical in
every configuration). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import io
import logging
import platform
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, redirect_stdout
from typing import Any

import blockbuster

import loopwarden


def _lock_acquire_release(n: int) -> None:
    lock = threading.Lock()
    for _ in range(n):
        lock.acquire()
        lock.release()


def _with_lock(n: int) -> None:
    lock = threading.Lock()
    for _ in range(n):
        with lock:
            pass


def _with_rlock(n: int) -> None:
    rlock = threading.RLock()
    for _ in range(n):
        with rlock:
            pass


def _queue_nowait(n: int) -> None:
    q: queue.Queue[int] = queue.Queue()
    for _ in range(n):
        q.put_nowait(1)
        q.get_nowait()


def _queue_put_get(n: int) -> None:
    q: queue.Queue[int] = queue.Queue()
    for _ in range(n):
        q.put(1)
        q.get()


_LOGGER = logging.getLogger("loopwarden.bench.loop_thread")


def _logging_info(n: int) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(logging.INFO)
    _LOGGER.propagate = False
    try:
        for _ in range(n):
            _LOGGER.info("tick %d", 1)
    finally:
        _LOGGER.removeHandler(handler)


#: Where the console row's sys.stdout points: a real file, opened here because
#: opening it on the loop would itself be a finding (and a BlockBuster error).
_CONSOLE_FILE = tempfile.TemporaryFile("w")  # noqa: SIM115 - lives as long as the script


def _print_to_console_file(n: int) -> None:
    with redirect_stdout(_CONSOLE_FILE):
        for _ in range(n):
            print("tick", 1)


#: (label, timed loop)
ROWS: tuple[tuple[str, Callable[[int], None]], ...] = (
    ("uncontended Lock.acquire + release", _lock_acquire_release),
    ("with Lock", _with_lock),
    ("with RLock", _with_rlock),
    ("queue.Queue put_nowait + get_nowait", _queue_nowait),
    ("queue.Queue put + get (never waits)", _queue_put_get),
    ("logging.info to a stream (StringIO)", _logging_info),
    ("print to sys.stdout (a real file)", _print_to_console_file),
)


@contextmanager
def _blockbuster_active() -> Iterator[None]:
    bb = blockbuster.BlockBuster()
    bb.activate()
    try:
        yield
    finally:
        bb.deactivate()


CONFIGS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "unpatched": nullcontext,
    "loopwarden": lambda: loopwarden.guard(mode="record"),
    "BlockBuster": _blockbuster_active,
}


def _ns_per_call(func: Callable[[int], None], n: int) -> float:
    start = time.thread_time_ns()
    func(n)
    return (time.thread_time_ns() - start) / n


async def _run(rounds: int, n: int) -> dict[str, dict[str, float | None]]:
    samples: dict[str, dict[str, list[float]]] = {
        label: {config: [] for config in CONFIGS} for label, _ in ROWS
    }
    raises: set[tuple[str, str]] = set()
    for _ in range(rounds):
        for config, make in CONFIGS.items():
            with make() as warden:
                for label, func in ROWS:
                    if (label, config) in raises:
                        continue
                    try:
                        samples[label][config].append(_ns_per_call(func, n))
                    except blockbuster.BlockingError:
                        raises.add((label, config))
                if config == "loopwarden":
                    assert not warden.findings, warden.findings  # nothing here blocks
    return {
        label: {
            config: None if (label, config) in raises else statistics.median(values)
            for config, values in cells.items()
        }
        for label, cells in samples.items()
    }


def render(results: dict[str, dict[str, float | None]]) -> str:
    """Markdown table: ns per call and loopwarden's ratio to unpatched."""
    lines = [
        "| call on the loop thread, not blocking | unpatched ns | loopwarden ns | lw / unpatched "
        "| BlockBuster ns |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, cells in results.items():
        base, lw, bb = cells["unpatched"], cells["loopwarden"], cells["BlockBuster"]
        assert base is not None and lw is not None
        bb_text = "raises" if bb is None else f"{bb:.0f}"
        lines.append(f"| {label} | {base:.0f} | {lw:.0f} | {lw / base:.2f} | {bb_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 31)")
    args = parser.parse_args(argv)
    rounds, n = (2, 200) if args.quick else (args.rounds or 31, 5000)
    print(
        f"Python {platform.python_version()} on {sys.platform}, "
        f"BlockBuster {importlib.metadata.version('blockbuster')}, rounds={rounds}, n={n}"
    )
    print(render(asyncio.run(_run(rounds, n))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
