"""CPU cost of the stall watchdog on a qasync app, idle and busy.

Runs four phases of ``--seconds`` each on one PySide6 + qasync loop:
idle and busy, each with the watchdog off and on (both under a ``record``
warden, so the difference is the watchdog alone), and prints process CPU
time, the watchdog thread's own CPU time and, for the busy app, the loop's
throughput.

    python benchmarks/watchdog_cpu.py            # 10 s per phase
    python benchmarks/watchdog_cpu.py --seconds 1   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import loopwarden
from loopwarden import watchdog
from loopwarden.watchdog import watcher


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def idle(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 0


async def busy(seconds: float) -> int:
    # A responsive but busy GUI: a zero-interval QTimer runs short slices of
    # work back to back, as a model update or a redraw loop would. (Not
    # `await asyncio.sleep(0)` in a loop: qasync on PySide6 6.12 drops a
    # reference to None per scheduled callback, which on Python 3.11 kills
    # the interpreter within seconds at that rate.)
    iterations = 0

    def work() -> None:
        nonlocal iterations
        spin(0.0005)
        iterations += 1

    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(work)
    timer.start()
    await asyncio.sleep(seconds)
    timer.stop()
    return iterations


def thread_cpu(name: str) -> float | None:
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (AttributeError, OSError):
                return None
    return None


def run_phase(
    loop: asyncio.AbstractEventLoop, work: str, stall_ms: float | None, seconds: float
) -> dict[str, float | None]:
    job = idle if work == "idle" else busy
    with loopwarden.guard(mode="record", stall_ms=stall_ms) as warden:
        none_refs = sys.getrefcount(None)
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        iterations = loop.run_until_complete(job(seconds))
        wall = time.perf_counter() - wall_start
        cpu = time.process_time() - cpu_start
        dog_cpu = thread_cpu(watcher.THREAD_NAME)
        none_lost = none_refs - sys.getrefcount(None)
    return {
        "cpu_s": cpu,
        "cpu_pct": 100.0 * cpu / wall,
        "watchdog_cpu_s": dog_cpu,
        "iterations_per_s": iterations / wall if work == "busy" else None,
        # Work done per CPU second: stable on a shared machine, where other
        # processes decide how much CPU the loop gets per wall-clock second.
        "iterations_per_cpu_s": iterations / cpu if work == "busy" and cpu else None,
        "stalls": float(sum(1 for f in warden.findings if f.family == "stall")),
        "none_refs_lost": float(none_lost),
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--stall-ms", type=float, default=watchdog.DEFAULT_STALL_MS)
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    rows = []
    try:
        for work in ("idle", "busy"):
            for stall_ms in (None, args.stall_ms):
                rows.append((work, stall_ms, run_phase(loop, work, stall_ms, args.seconds)))
    finally:
        loop.close()

    print(f"qasync app, {args.seconds:g} s per phase, stall threshold {args.stall_ms:g} ms")
    header = f"{'app':<5} {'watchdog':<9} {'process CPU s':>13} {'CPU %':>7} "
    header += f"{'watchdog CPU s':>14} {'loop iter/s':>12} {'iter/CPU s':>11} {'stalls':>6} "
    header += f"{'None refs lost':>14}"
    print(header)
    for work, stall_ms, r in rows:
        print(
            f"{work:<5} {'on' if stall_ms else 'off':<9} {fmt(r['cpu_s'], '.3f'):>13} "
            f"{fmt(r['cpu_pct'], '.2f'):>7} {fmt(r['watchdog_cpu_s'], '.3f'):>14} "
            f"{fmt(r['iterations_per_s'], '.0f'):>12} {fmt(r['iterations_per_cpu_s'], '.0f'):>11} "
            f"{fmt(r['stalls'], '.0f'):>6} "
            f"{fmt(r['none_refs_lost'], '.0f'):>14}"
        )
    for work in ("idle", "busy"):
        off = next(r for w, s, r in rows if w == work and s is None)
        on = next(r for w, s, r in rows if w == work and s is not None)
        extra = (on["cpu_s"] or 0.0) - (off["cpu_s"] or 0.0)
        line = f"{work}: watchdog adds {extra * 1000 / args.seconds:+.2f} ms CPU per second"
        if work == "busy" and off["iterations_per_s"] and on["iterations_per_s"]:
            change = 100.0 * (on["iterations_per_s"] / off["iterations_per_s"] - 1.0)
            line += f", loop throughput {change:+.2f} % per wall second"
            if off["iterations_per_cpu_s"] and on["iterations_per_cpu_s"]:
                change = 100.0 * (on["iterations_per_cpu_s"] / off["iterations_per_cpu_s"] - 1.0)
                line += f", {change:+.2f} % per CPU second"
        print(line)
    if sys.version_info < (3, 12):
        # qasync on PySide6 6.12 drops a reference to None for every callback
        # it schedules (column "None refs lost"; the watchdog adds none). On
        # Python < 3.12, where None is not immortal, the interpreter can then
        # die at shutdown (none_dealloc): skip the shutdown once the figures are out.
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
