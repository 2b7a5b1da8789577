"""Cost of the Qt dispatch marks and C++ I/O rules on threads that are not the GUI thread.

Run from the repository root (needs PySide6, the ``qt`` extra)::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_qt_dispatch.py          # ~20 s
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_qt_dispatch.py --quick  # smoke run

A worker thread times calls that loopwarden wraps (``signal.emit()`` to a
direct slot, ``QImage(w, h, fmt)``
through the patched ``__init__``, ``QFileInfo.isFile()`` on a resource) with
detection off and with ``guard(mode="record")`` active, in interleaved rounds;
each cell is the median in nanoseconds per call. Figures are printed, never
asserted: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QFileInfo, QObject, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

import loopwarden


class _Emitter(QObject):
    ping = Signal()


def _python_wrapper(func: Callable[..., Any]) -> Callable[[], Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return lambda: wrapper("")


def _cases() -> dict[str, Callable[[], Any]]:
    emitter = _Emitter()
    emitter.ping.connect(lambda: None)
    info = QFileInfo(":/qt-project.org/logos/pysidelogo.png")
    fmt = QImage.Format.Format_RGB32
    # Lambdas look the patched attributes up at each call.
    return {
        "signal.emit() (direct slot)": lambda: emitter.ping.emit(),
        "QImage(8, 8, fmt)": lambda: QImage(8, 8, fmt),
        "QFileInfo(resource).isFile()": lambda: info.isFile(),
        # For reference: a plain Python call of a no-op through *args.
        "Python wrapper around len() (ref)": _python_wrapper(len),
    }


def _time(call: Callable[[], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        call()
    return (time.perf_counter_ns() - start) / n


def _in_worker(func: Callable[[], None]) -> None:
    thread = threading.Thread(target=func)
    thread.start()
    thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (CI)")
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    rounds, n = (3, 2_000) if options.quick else (options.rounds, 20_000)
    app = QApplication.instance() or QApplication([])
    results: dict[str, dict[str, list[float]]] = {}

    def measure(config: str) -> None:
        cases = _cases()  # made in the worker: its QObjects live there
        for name, call in cases.items():
            call()  # warm up
            results.setdefault(name, {}).setdefault(config, []).append(_time(call, n))

    for _ in range(rounds):
        _in_worker(lambda: measure("off"))
        with loopwarden.guard(mode="record"):
            _in_worker(lambda: measure("guard active"))

    print(f"worker thread, ns per call (median of {rounds} rounds of {n:,} calls)")
    print(f"{'call':34} {'off':>10} {'guard active':>14} {'extra':>8}")
    for name, configs in results.items():
        off = statistics.median(configs["off"])
        on = statistics.median(configs["guard active"])
        print(f"{name:34} {off:10.0f} {on:14.0f} {on - off:+8.0f}")
    del app


if __name__ == "__main__":
    main()
