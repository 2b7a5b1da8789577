"""Cost of the thread-affinity checks (family ``thread``), on the owner's thread and in a worker.

Run from the repository root (PySide6 comes with the ``qt`` extra)::

    python benchmarks/bench_thread.py            # full run: 21 interleaved rounds, ~1 minute
    python benchmarks/bench_thread.py --quick    # smoke run for CI, a few seconds

Rows, each in ns of the calling thread's CPU time per call, unpatched vs.
loopwarden active (``guard(mode="record")``), median of interleaved rounds:

* on the loop thread: ``loop.call_soon``, ``Future.add_done_callback``,
  ``Queue.put_nowait``+``get_nowait`` (the owner's own calls: the common case);
* in a worker thread: ``loop.call_soon_threadsafe`` (never patched) and a
  wrong-thread ``loop.call_soon`` in record mode (the price of one finding);
* on the Qt GUI thread: ``QLabel.setText`` (GUI-only check) and
  ``QTimer.start``+``stop`` (object-thread check);
* in a worker: ``QLabel.text`` (not patched) next to a finding-free call.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import loopwarden


def _per_call(func: Callable[[], Any], n: int) -> float:
    # CPU time of this thread, not wall time: on a shared machine other
    # processes' load then inflates the figures far less.
    start = time.thread_time_ns()
    for _ in range(n):
        func()
    return (time.thread_time_ns() - start) / n


def _noop() -> None:
    return None


def _asyncio_rows(n: int) -> dict[str, Callable[[], float]]:
    """Timings taken inside a running loop (and from a worker of it)."""

    def on_loop(make: Callable[[asyncio.AbstractEventLoop], Callable[[], Any]]) -> float:
        async def main() -> float:
            call = make(asyncio.get_running_loop())
            return _per_call(call, n)

        return asyncio.run(main())

    def call_soon(loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
        return lambda: loop.call_soon(_noop)

    def add_done_callback(loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
        fut = loop.create_future()
        return lambda: fut.add_done_callback(_noop)

    def queue_ops(loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        return lambda: (queue.put_nowait(1), queue.get_nowait())

    def from_worker(method: str, count: int) -> float:
        async def main() -> float:
            loop = asyncio.get_running_loop()
            call = getattr(loop, method)
            return await asyncio.to_thread(_per_call, lambda: call(_noop), count)

        return asyncio.run(main())

    return {
        "loop thread: loop.call_soon": lambda: on_loop(call_soon),
        "loop thread: Future.add_done_callback": lambda: on_loop(add_done_callback),
        "loop thread: Queue.put_nowait+get_nowait": lambda: on_loop(queue_ops),
        "worker: loop.call_soon_threadsafe": lambda: from_worker("call_soon_threadsafe", n),
        "worker: wrong-thread loop.call_soon (a finding)": lambda: from_worker(
            "call_soon", max(1, n // 20)
        ),
    }


_keep_alive: list[Any] = []  # the QApplication must outlive the timings


def _qt_rows(n: int) -> dict[str, Callable[[], float]]:
    try:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication, QLabel
    except ImportError:
        return {}
    app = QApplication.instance() or QApplication([])
    label = QLabel()
    timer = QTimer()

    def in_worker(func: Callable[[], Any]) -> float:
        result: list[float] = []
        thread = threading.Thread(target=lambda: result.append(_per_call(func, n)))
        thread.start()
        thread.join()
        return result[0]

    rows: dict[str, Callable[[], float]] = {
        "GUI thread: QLabel.setText": lambda: _per_call(lambda: label.setText("x"), n),
        "GUI thread: QTimer.start+stop": lambda: _per_call(
            lambda: (timer.start(1000), timer.stop()), n
        ),
        "worker: QLabel.text (unpatched read)": lambda: in_worker(label.text),
    }
    _keep_alive.append(app)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (CI)")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (21)")
    options = parser.parse_args()
    rounds, n = (3, 2_000) if options.quick else (options.rounds, 20_000)
    rows = {**_asyncio_rows(n), **_qt_rows(n)}
    plain: dict[str, list[float]] = {name: [] for name in rows}
    guarded: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, run in rows.items():
            plain[name].append(run())
        with loopwarden.guard(mode="record") as warden:
            for name, run in rows.items():
                guarded[name].append(run())
                warden.clear()  # findings of the wrong-thread row: not kept
    width = max(len(name) for name in rows)
    print(f"{'row':<{width}}  {'unpatched':>10}  {'loopwarden':>10}  {'delta':>8}  (ns/call)")
    for name in rows:
        before = statistics.median(plain[name])
        after = statistics.median(guarded[name])
        print(f"{name:<{width}}  {before:>10.0f}  {after:>10.0f}  {after - before:>+8.0f}")


if __name__ == "__main__":
    main()
