"""The dev-build app's everyday calls, one kind at a time, on a qasync loop thread.

``bench_dev_app.py`` measures a whole app; this script breaks its added cost down
per call, made where the app makes them: on the GUI thread while a
``qasync.QEventLoop`` runs, unpatched vs loopwarden active vs BlockBuster active
(``bench_loop_thread.py``'s configurations, timing and table), interleaved round
by round. Nothing here blocks and nothing is reported::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_qasync_calls.py          # 15 rounds
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_qasync_calls.py --quick  # smoke run

Each cell is the median over the rounds of the loop thread's CPU time per call.
The console handler writes to ``sys.stderr``, whose descriptor points at a
temp file while the rows run. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import bench_loop_thread  # this directory is on sys.path when run as a script
import blockbuster
import qasync
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QApplication

_LINE = b"item processed, payload of about forty bytes\n"


class _Model(QObject):
    changed = Signal(int)


class _View(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    @Slot(int)
    def on_changed(self, row: int) -> None:
        self.seen += 1


def _console_logging(n: int) -> None:
    # Made per call of the row: the handler takes sys.stderr as it is now.
    log = logging.getLogger("loopwarden.bench.qasync_calls")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        for i in range(n):
            log.info("item %d processed", i)
    finally:
        log.removeHandler(handler)


def _signal_emit(n: int) -> None:
    model, view = _Model(), _View()
    model.changed.connect(view.on_changed)
    for i in range(n):
        model.changed.emit(i)


def _socket_send(n: int) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        for i in range(n):
            a.send(_LINE)
            if i % 64 == 63:  # drain the peer now and then, outside the row's own calls
                with contextlib.suppress(BlockingIOError):
                    while b.recv(65536):
                        pass


def _asyncio_queue(n: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
        queue.get_nowait()


async def _loop_turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)  # one qasync callback: a Qt timer started, fired, killed


#: (label, timed loop): plain functions, or coroutine functions awaited on the loop.
ROWS: tuple[tuple[str, Callable[[int], Any]], ...] = (
    ("logging.info to the console (StreamHandler on sys.stderr)", _console_logging),
    ("signal.emit() to a slot of another QObject", _signal_emit),
    ("uncontended Lock.acquire + release", bench_loop_thread._lock_acquire_release),
    ("with Lock", bench_loop_thread._with_lock),
    ("socket.send on a non-blocking socket", _socket_send),
    ("asyncio.Queue put_nowait + get_nowait", _asyncio_queue),
    ("await asyncio.sleep(0): one qasync loop turn", _loop_turns),
)


async def _ns_per_call(func: Callable[[int], Any], n: int) -> float:
    start = time.thread_time_ns()
    result = func(n)
    if isinstance(result, Awaitable):
        await result
    return (time.thread_time_ns() - start) / n


async def _run(rounds: int, n: int) -> dict[str, dict[str, float | None]]:
    samples: dict[str, dict[str, list[float]]] = {
        label: {config: [] for config in bench_loop_thread.CONFIGS} for label, _ in ROWS
    }
    raises: set[tuple[str, str]] = set()
    for _, func in ROWS:
        await _ns_per_call(func, 50)  # warm-up: Qt's first timers and imports, not timed
    for _ in range(rounds):
        for config, make in bench_loop_thread.CONFIGS.items():
            with make() as warden:
                for label, func in ROWS:
                    if (label, config) in raises:
                        continue
                    try:
                        samples[label][config].append(await _ns_per_call(func, n))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15)")
    args = parser.parse_args(argv)
    rounds, n = (2, 200) if args.quick else (args.rounds or 15, 5000)
    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    # The console is the process's own stderr (as in the app); its descriptor
    # points at a temp file while the rows run, so the terminal gets no log lines.
    with tempfile.TemporaryFile(prefix="loopwarden-qasync-calls-") as console:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(console.fileno(), 2)
        try:
            results = loop.run_until_complete(_run(rounds, n))
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
    loop.close()
    print(
        f"Python {platform.python_version()} on {sys.platform}, "
        f"PySide6 {importlib.metadata.version('PySide6')}, "
        f"qasync {importlib.metadata.version('qasync')}, "
        f"BlockBuster {importlib.metadata.version('blockbuster')}, rounds={rounds}, n={n}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(bench_loop_thread.render(results))
    # Skip the interpreter's teardown of Qt objects: the figures are out.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
