"""Instructions, not time: what loopwarden adds, counted under ``valgrind --tool=callgrind``.

Timings on a shared machine move by more than the differences that matter here
(a few percent of a dev build's throughput, a microsecond of a per-test switch).
Instruction counts do not depend on the load, so this script counts them, each
figure as the difference between a long and a short run of the same process, so
that start-up (imports, activation) cancels out::

    python benchmarks/count_instructions.py calls       # one kind of call at a time (qasync loop)
    python benchmarks/count_instructions.py dev-app     # bench_dev_app.py's app, per work unit
    python benchmarks/count_instructions.py switch      # guard() enter+exit, keep_installed() held
    python benchmarks/count_instructions.py all

* ``calls``: each kind of call of ``bench_qasync_calls.py`` made N and 4N times
  inside one coroutine of a qasync loop (PySide6, offscreen), unguarded and under
  ``loopwarden.activate(mode="warn")``; the loop's own bookkeeping per iteration
  is in both columns.
* ``dev-app``: ``bench_dev_app.py``'s child process, unguarded and under
  ``LOOPWARDEN=warn``, for ``--seconds`` and three times as long; instructions
  per work unit. (Under valgrind the app runs ~30x slower; its 2 ms ticks then
  come about four times per unit in both configurations.) This one does not
  settle: how many units share a loop turn follows the app's timing, and with it
  the machine's load, so runs differ by several percent; the per-call counts are
  the ones that repeat.
* ``switch``: the pytest plugin's per-test switch, without and with PySide6's
  widgets and a ``QApplication``.

Needs ``valgrind`` (``apt-get install -y valgrind``); a run takes a few minutes
(each process ~25 s under valgrind, two at a time). Figures are printed, never
asserted. ``PYTHONHASHSEED=0`` in every run: string hashes change dict probing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("lock", "with-lock", "with-rlock", "emit", "log", "send", "queue", "turn")
DEV_APP_KINDS = "allowed,locks,logging,queues,signals,sockets"


# -- the measured processes -------------------------------------------------------------------


def _calls_child(kind: str, n: int, guarded: bool) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6 import QtCore, QtWidgets

    import loopwarden

    app = QtWidgets.QApplication([])

    class Model(QtCore.QObject):
        changed = QtCore.Signal(int)

    class View(QtCore.QObject):
        total = 0

        @QtCore.Slot(int)
        def on_changed(self, value: int) -> None:
            self.total += value

    model, view = Model(), View()
    model.changed.connect(view.on_changed)
    lock, rlock = threading.Lock(), threading.RLock()
    log = logging.getLogger("count_instructions")
    log.addHandler(logging.StreamHandler())  # sys.stderr: the parent points it at a file
    log.setLevel(logging.INFO)
    log.propagate = False
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    payload = b"item processed, payload of about forty bytes\n"

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for _ in range(n):
            if kind == "lock":
                lock.acquire()
                lock.release()
            elif kind == "with-lock":
                with lock:
                    pass
            elif kind == "with-rlock":
                with rlock:
                    pass
            elif kind == "emit":
                model.changed.emit(1)
            elif kind == "log":
                log.info("item processed")
            elif kind == "send":
                left.send(payload)
                right.recv(100)
            elif kind == "queue":
                queue.put_nowait(1)
                queue.get_nowait()
            elif kind == "turn":
                await asyncio.sleep(0)

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    if guarded:
        loopwarden.activate(mode="warn")
    loop.run_until_complete(main())
    os._exit(0)  # skip the teardown of Qt objects: it is not what is counted


def _switch_child(n: int, qt: bool) -> None:
    if qt:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6 import QtWidgets

        app = QtWidgets.QApplication([])  # noqa: F841 - kept alive for the whole run
    import loopwarden

    with loopwarden.keep_installed():
        for _ in range(50 + n):  # 50 first: what the first switches build is start-up
            with loopwarden.guard(mode="record"):
                pass
    os._exit(0)


# -- the parent --------------------------------------------------------------------------------


def _count(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Instructions the process ran under callgrind, and its standard output."""
    with tempfile.TemporaryDirectory(prefix="loopwarden-callgrind-") as workdir:
        log = os.path.join(workdir, "valgrind.log")
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={os.path.join(workdir, 'callgrind.out')}",
                f"--log-file={log}",
                *cmd,
            ],
            env={**os.environ, "PYTHONHASHSEED": "0", "QT_QPA_PLATFORM": "offscreen", **env},
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # console log lines of the measured app
            text=True,
            check=False,
        )
        text = Path(log).read_text(errors="replace")
    found = re.search(r"Collected : (\d+)", text)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(cmd)}: exit {result.returncode}\n{text[-2000:]}")
    return int(found.group(1)), result.stdout


def _per_iteration(
    jobs: dict[str, tuple[list[str], dict[str, str], list[str], float]],
) -> dict[str, float]:
    """name -> (long run - short run) / extra iterations, running two processes at a time.

    Each job is (short command, environment, long command, extra iterations).
    """
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        short = {name: pool.submit(_count, job[0], job[1]) for name, job in jobs.items()}
        long = {name: pool.submit(_count, job[2], job[1]) for name, job in jobs.items()}
        return {
            name: (long[name].result()[0] - short[name].result()[0]) / jobs[name][3]
            for name in jobs
        }


def _table(rows: dict[str, tuple[float, float]], what: str) -> str:
    lines = [
        f"| {what} | unguarded | loopwarden | added | loopwarden / unguarded |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (base, guarded) in rows.items():
        lines.append(
            f"| {name} | {base:,.0f} | {guarded:,.0f} | {guarded - base:+,.0f} "
            f"| {guarded / base:.3f} |"
        )
    return "\n".join(lines)


def calls(n: int) -> str:
    me = [sys.executable, __file__]
    jobs = {
        f"{kind} {config}": (
            [*me, "--calls-child", kind, str(n), config],
            {},
            [*me, "--calls-child", kind, str(4 * n), config],
            3.0 * n,
        )
        for kind in KINDS
        for config in ("plain", "warn")
    }
    counts = _per_iteration(jobs)
    rows = {kind: (counts[f"{kind} plain"], counts[f"{kind} warn"]) for kind in KINDS}
    return f"Instructions per iteration on a qasync loop ({3 * n} iterations counted)\n\n" + _table(
        rows, "call on the loop thread, not blocking"
    )


def dev_app(seconds: float) -> str:
    app = [sys.executable, str(HERE / "bench_dev_app.py")]
    allow = "__main__:_settings_mtime=the app's small settings file (read rarely)"
    configs = {
        "unguarded": ("unguarded", {}),
        "LOOPWARDEN=warn": ("LOOPWARDEN=warn", {"LOOPWARDEN": "warn", "LOOPWARDEN_ALLOW": allow}),
    }
    runs: dict[tuple[str, float], tuple[int, dict[str, float]]] = {}

    def one(config: str, length: float) -> None:
        child, env = configs[config]
        cmd = [*app, "--child", child, "--seconds", str(length), "--kinds", DEV_APP_KINDS]
        instructions, out = _count(cmd, env)
        runs[config, length] = instructions, json.loads(out.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [
            pool.submit(one, config, length)
            for config in configs
            for length in (seconds, 3 * seconds)
        ]:
            future.result()
    rows: dict[str, tuple[float, float]] = {}
    per_unit: dict[str, float] = {}
    ticks: dict[str, float] = {}
    for config in configs:
        (short, short_fig), (long, long_fig) = runs[config, seconds], runs[config, 3 * seconds]
        units = long_fig["units_per_s"] * 3 * seconds - short_fig["units_per_s"] * seconds
        per_unit[config] = (long - short) / units
        ticks[config] = (long_fig["ticks"] - short_fig["ticks"]) / units
    rows["work unit"] = (per_unit["unguarded"], per_unit["LOOPWARDEN=warn"])
    return (
        f"bench_dev_app.py's app under callgrind, {seconds:g} s and {3 * seconds:g} s runs; "
        f"ticks per unit: unguarded {ticks['unguarded']:.2f}, "
        f"LOOPWARDEN=warn {ticks['LOOPWARDEN=warn']:.2f}\n\n" + _table(rows, "instructions per")
    )


def switch(n: int) -> str:
    me = [sys.executable, __file__]
    jobs = {
        name: (
            [*me, "--switch-child", str(n), name],
            {},
            [*me, "--switch-child", str(4 * n), name],
            3.0 * n,
        )
        for name in ("no-qt", "qt")
    }
    counts = _per_iteration(jobs)
    return (
        "Instructions per per-test switch (guard() enter+exit, keep_installed() held)\n\n"
        "| PySide6 | instructions |\n|---|---:|\n"
        f"| not imported | {counts['no-qt']:,.0f} |\n"
        f"| widgets imported, a QApplication | {counts['qt']:,.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("what", nargs="?", choices=("calls", "dev-app", "switch", "all"))
    parser.add_argument("-n", type=int, default=5000, help="iterations of the short runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="the dev app's short run")
    parser.add_argument("--calls-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--switch-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls_child:
        kind, n, config = args.calls_child
        _calls_child(kind, int(n), config == "warn")
        return 0
    if args.switch_child:
        n, name = args.switch_child
        _switch_child(int(n), name == "qt")
        return 0
    if args.what is None:
        parser.error("say what to count: calls, dev-app, switch or all")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    print(f"Python {platform.python_version()}, {platform.machine()}, instructions by callgrind")
    if args.what in ("switch", "all"):
        print(switch(args.n // 10 or 1), end="\n\n")
    if args.what in ("calls", "all"):
        print(calls(args.n), end="\n\n")
    if args.what in ("dev-app", "all"):
        print(dev_app(args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
