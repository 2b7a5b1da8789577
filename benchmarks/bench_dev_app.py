"""A dev build of a Qt app, timed unguarded, under ``LOOPWARDEN=warn`` and under BlockBuster.

A PySide6 + qasync app (offscreen) keeps its loop busy for ``--seconds`` with
the everyday work of a GUI, none of which blocks:

* **queues**: a producer task hands items to a consumer task through an
  ``asyncio.Queue(maxsize=8)`` (one item is one *work unit*; left out, the
  consumer makes its own items and yields to the loop every 8 of them);
* **locks**: the consumer updates shared state under two uncontended
  ``threading.Lock`` s (``with lock:`` and ``acquire()``/``release()``);
* **signals**: it emits a signal to a model ``QObject`` whose slot emits a
  second signal to a view's slot;
* **logging**: one ``logging.info`` line per unit to the console
  (``StreamHandler()`` on ``sys.stderr``, which the parent points at a real file);
* **sockets**: one line per unit written to a TCP echo server on 127.0.0.1
  (asyncio streams, in the same loop), echoes counted by a reader task;
* **allowed**: every 100 units, ``os.stat`` inside
  ``loopwarden.allow_blocking(reason=...)`` and ``os.stat`` in a function
  listed in ``LOOPWARDEN_ALLOW``;
* **ticks**: a 2 ms ``Qt.PreciseTimer`` whose lateness (time since the
  previous tick minus 2 ms) is recorded; its slot reads the model under its
  lock and emits a frame signal.

Each configuration runs in a fresh subprocess, interleaved round by round
(unguarded, loopwarden, BlockBuster, unguarded, ...) so that load from other
processes hits them alike:

* ``unguarded``: the same app, ``loopwarden.activate_from_env()`` with
  ``LOOPWARDEN`` unset (a no-op);
* ``LOOPWARDEN=warn``: ``activate_from_env()`` at start-up, as a dev build does,
  with ``LOOPWARDEN_ALLOW`` naming the allowed function;
* ``BlockBuster``: the app inside ``blockbuster_ctx()``; ``allow_blocking`` has
  no BlockBuster equivalent, so both allowed ``os.stat`` calls are allowed there
  with ``can_block_in(this file, function)``.

Run from the repository root::

    python benchmarks/bench_dev_app.py                 # 5 rounds of 5 s per configuration
    python benchmarks/bench_dev_app.py --quick         # smoke run for CI: 1 round of 1 s
    python benchmarks/bench_dev_app.py --without logging --without sockets  # leave kinds out
    python benchmarks/bench_dev_app.py --ablate --rounds 3 --seconds 2  # each kind's share
    python benchmarks/bench_dev_app.py --profile LOOPWARDEN=warn        # cProfile of one run

Throughput is work units per wall second (and per CPU second of the app
process, which other processes' load disturbs less); latency is the 99th
percentile of the ticks' lateness. Each cell is the median over the rounds.
Figures are printed, never asserted: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.metadata
import json
import logging
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import loopwarden

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Workload kinds that ``--without`` can leave out (the ticks always run: they are the probe).
KINDS = ("queues", "locks", "signals", "logging", "sockets", "allowed")

#: Configuration name -> environment variables of its subprocess.
CONFIGS: dict[str, dict[str, str]] = {
    "unguarded": {},
    "LOOPWARDEN=warn": {
        "LOOPWARDEN": "warn",
        "LOOPWARDEN_ALLOW": "__main__:_settings_mtime=the app's small settings file (read rarely)",
    },
    "BlockBuster": {},
}

TICK_MS = 2
ALLOWED_EVERY = 100
QUEUE_SIZE = 8
_LINE = b"item processed, payload of about forty bytes\n"


# -- the app (runs in the child process) ----------------------------------------------------


def _settings_mtime(path: str) -> float:
    """An allowed blocking call: named in ``LOOPWARDEN_ALLOW`` (and BlockBuster's can_block_in)."""
    return os.stat(path).st_mtime


def _stat_allowed_here(path: str) -> float:
    with loopwarden.allow_blocking(reason="a tiny local file, read rarely"):
        return os.stat(path).st_size


@dataclass
class Counters:
    """What the app did; snapshots at the start and end of the measured window."""

    units: int = 0
    echoed_lines: int = 0
    frames: int = 0
    lateness_s: list[float] = field(default_factory=list)


def _build_app(counters: Counters, kinds: frozenset[str], settings_path: str) -> Any:
    """The QObjects and the per-unit work; returns the object whose ``process(item)`` runs a unit.

    Imports Qt here so that the parent process never loads it.
    """
    from PySide6.QtCore import QObject, Signal, Slot

    log = logging.getLogger("devapp")

    class Model(QObject):
        changed = Signal(int)

        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()
            self.rows = [0] * 64

        @Slot(int)
        def on_item(self, item: int) -> None:
            with self.lock:
                self.rows[item % 64] = item
            self.changed.emit(item % 64)

    class View(QObject):
        frame_rendered = Signal()

        def __init__(self, model: Model) -> None:
            super().__init__()
            self.model = model
            self.dirty = 0

        @Slot(int)
        def on_changed(self, row: int) -> None:
            self.dirty += 1

        @Slot()
        def render(self) -> None:
            with self.model.lock:
                self.dirty = sum(self.model.rows[:8]) & 1
            self.frame_rendered.emit()

    class Controller(QObject):
        item_arrived = Signal(int)

        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.view = View(self.model)
            self.item_arrived.connect(self.model.on_item)
            self.model.changed.connect(self.view.on_changed)
            self.stats_lock = threading.Lock()
            self.seen_lock = threading.Lock()
            self.total = 0
            self.writer: asyncio.StreamWriter | None = None

        def process(self, item: int) -> None:
            if "locks" in kinds:
                with self.stats_lock:
                    self.total += item
                self.seen_lock.acquire()
                try:
                    self.total ^= 1
                finally:
                    self.seen_lock.release()
            if "signals" in kinds:
                self.item_arrived.emit(item)
            if "logging" in kinds:
                log.info("item %d processed", item)
            if self.writer is not None:
                self.writer.write(_LINE)
            if "allowed" in kinds and item % ALLOWED_EVERY == 0:
                _settings_mtime(settings_path)
                _stat_allowed_here(settings_path)
            counters.units += 1

    return Controller()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _count_echoes(reader: asyncio.StreamReader, counters: Counters) -> None:
    while data := await reader.read(65536):
        counters.echoed_lines += data.count(b"\n")


async def _producer(queue: asyncio.Queue[int]) -> None:
    item = 0
    while True:
        await queue.put(item)
        item += 1


async def _consumer(queue: asyncio.Queue[int] | None, controller: Any) -> None:
    item = 0
    while True:
        if queue is not None:
            item = await queue.get()
        else:
            item += 1
            if item % QUEUE_SIZE == 0:
                # As often as the consumer waits for the producer when the queue runs dry.
                await asyncio.sleep(0)
        controller.process(item)
        writer: asyncio.StreamWriter | None = controller.writer
        if writer is not None and writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()


def _snapshot(counters: Counters) -> tuple[float, float, int, int]:
    return time.perf_counter(), time.process_time(), counters.units, counters.echoed_lines


async def _run_app(
    seconds: float, warmup: float, kinds: frozenset[str], settings_path: str
) -> dict[str, Any]:
    from PySide6.QtCore import QObject, Qt, QTimer, Slot

    counters = Counters()
    controller = _build_app(counters, kinds, settings_path)
    tasks: list[asyncio.Task[None]] = []
    server: asyncio.Server | None = None
    if "sockets" in kinds:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, controller.writer = await asyncio.open_connection("127.0.0.1", port)
        tasks.append(asyncio.ensure_future(_count_echoes(reader, counters)))

    class Ticker(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.last = 0.0
            self.frame = controller.view.render

        @Slot()
        def tick(self) -> None:
            now = time.perf_counter()
            if self.last:
                counters.lateness_s.append(now - self.last - TICK_MS / 1000)
            self.last = now
            counters.frames += 1
            self.frame()

    ticker = Ticker()
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(ticker.tick)
    timer.start()

    queue: asyncio.Queue[int] | None = None
    if "queues" in kinds:
        queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        tasks.append(asyncio.ensure_future(_producer(queue)))
    tasks.append(asyncio.ensure_future(_consumer(queue, controller)))

    await asyncio.sleep(warmup)
    counters.lateness_s.clear()
    wall0, cpu0, units0, echoed0 = _snapshot(counters)
    await asyncio.sleep(seconds)
    wall1, cpu1, units1, echoed1 = _snapshot(counters)
    lateness = sorted(counters.lateness_s)

    timer.stop()
    for task in tasks:
        if task.done():  # every task loops forever: one that ended has failed
            raise RuntimeError(f"a workload task ended early: {task!r}") from task.exception()
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if controller.writer is not None:
        controller.writer.close()
    if server is not None:
        server.close()
    wall, cpu = wall1 - wall0, cpu1 - cpu0
    return {
        "units_per_s": (units1 - units0) / wall,
        "units_per_cpu_s": (units1 - units0) / cpu if cpu else 0.0,
        "echoed_per_s": (echoed1 - echoed0) / wall,
        "ticks": len(lateness),
        "p99_lateness_ms": 1000 * lateness[int(0.99 * (len(lateness) - 1))] if lateness else 0.0,
        "median_lateness_ms": 1000 * statistics.median(lateness) if lateness else 0.0,
    }


@contextmanager
def _blockbuster() -> Iterator[None]:
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx() as bb:
        # BlockBuster's only allowance: blocking inside named functions of a file.
        bb.functions["os.stat"].can_block_in(
            os.path.basename(__file__), {"_settings_mtime", "_stat_allowed_here"}
        )
        yield


def child(config: str, seconds: float, warmup: float, kinds: frozenset[str]) -> dict[str, Any]:
    """Run the app once in this process (the subprocess side); return its figures."""
    # First thing in main(), as a dev build does: a no-op unless LOOPWARDEN is set.
    warden = loopwarden.activate_from_env()
    if os.environ.get("LOOPWARDEN") and warden is None:
        # activate_from_env() never raises; it said why on stderr (in the console log).
        raise SystemExit("LOOPWARDEN is set but detection did not switch on")

    import qasync
    from PySide6.QtWidgets import QApplication

    handler = logging.StreamHandler()  # sys.stderr: "the console"
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    settings_path = os.path.abspath("settings.ini")
    with open(settings_path, "w") as f:
        f.write("[app]\ntheme = dark\n")
    guard: AbstractContextManager[None] = (
        _blockbuster() if config == "BlockBuster" else nullcontext()
    )
    with guard:
        result: dict[str, Any] = loop.run_until_complete(
            _run_app(seconds, warmup, kinds, settings_path)
        )
    result["findings"] = warden.total if warden is not None else None
    result["finding_sites"] = (
        sorted({f"{f.family} {f.primitive} at {f.user_caller}" for f in warden.findings})
        if warden is not None
        else []
    )
    loop.close()
    return result


# -- the parent: interleaved subprocesses, one table -------------------------------------------


def _run_child(
    config: str,
    seconds: float,
    warmup: float,
    kinds: frozenset[str],
    workdir: str,
    profile_out: str | None = None,
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWARDEN")}
    env.update(CONFIGS[config])
    env["QT_QPA_PLATFORM"] = "offscreen"
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        config,
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--kinds",
        ",".join(sorted(kinds)),
        *(["--profile-out", profile_out] if profile_out else []),
    ]
    console = os.path.join(workdir, "console.log")
    with open(console, "w") as stderr:
        result = subprocess.run(
            cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False
        )
    with open(console, errors="replace") as f:
        # Only log lines are expected: an error in a slot is printed by PySide6, not raised.
        errors = [line for line in f if not line.endswith(" processed\n")]
    if result.returncode != 0 or any("Error" in line for line in errors):
        tail = "".join(errors[-40:])
        raise SystemExit(f"{config}: the app failed (exit {result.returncode}):\n{tail}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(float(run[key]) for run in runs)


def render(results: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown table: medians over the rounds and the ratios to the unguarded app."""
    base = results["unguarded"]
    base_tp = _median(base, "units_per_s")
    base_cpu = _median(base, "units_per_cpu_s")
    base_p99 = _median(base, "p99_lateness_ms")
    lines = [
        "| configuration | units/s | vs unguarded | units/CPU s | vs unguarded "
        "| p99 tick lateness ms | vs unguarded | median lateness ms | findings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config, runs in results.items():
        tp, cpu = _median(runs, "units_per_s"), _median(runs, "units_per_cpu_s")
        p99 = _median(runs, "p99_lateness_ms")
        counts = [run["findings"] for run in runs if run["findings"] is not None]
        findings = str(sum(counts)) if counts else "-"
        lines.append(
            f"| {config} | {tp:.0f} | {tp / base_tp:.3f} | {cpu:.0f} | {cpu / base_cpu:.3f} "
            f"| {p99:.3f} | {p99 / base_p99:.3f} | {_median(runs, 'median_lateness_ms'):.3f} "
            f"| {findings} |"
        )
    return "\n".join(lines)


def _added_us(unguarded: Sequence[dict[str, Any]], guarded: Sequence[dict[str, Any]]) -> float:
    """CPU microseconds loopwarden adds per work unit (medians of the rounds)."""
    return 1e6 / _median(guarded, "units_per_cpu_s") - 1e6 / _median(unguarded, "units_per_cpu_s")


def ablate(rounds: int, seconds: float, warmup: float) -> str:
    """Leave each workload kind out in turn; return a table of what loopwarden adds per unit.

    CPU time per unit, not wall time: it is what the patches cost, and other
    processes' load disturbs it less. A kind's share is the added cost of the
    whole app minus the added cost without that kind.
    """
    variants: dict[str, frozenset[str]] = {"(none)": frozenset(KINDS)}
    variants.update({kind: frozenset(KINDS) - {kind} for kind in KINDS})
    pair = ("unguarded", "LOOPWARDEN=warn")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(v, c): [] for v in variants for c in pair}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="loopwarden-devapp-") as workdir:
        for _ in range(rounds):
            for variant, kinds in variants.items():
                for config in pair:
                    runs[variant, config].append(
                        _run_child(config, seconds, warmup, kinds, workdir)
                    )
    whole = _added_us(runs["(none)", pair[0]], runs["(none)", pair[1]])
    lines = [
        f"{rounds} interleaved rounds of {seconds:g} s, load average {_load(load_before)} before, "
        f"{_load(os.getloadavg())} after; CPU us per work unit (median of the rounds)",
        "",
        "| left out | unguarded us/unit | LOOPWARDEN=warn us/unit | added us/unit "
        "| share of the added cost (us/unit) |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in variants:
        base, guarded = runs[variant, pair[0]], runs[variant, pair[1]]
        added = _added_us(base, guarded)
        share = "-" if variant == "(none)" else f"{whole - added:+.1f}"
        lines.append(
            f"| {variant} | {1e6 / _median(base, 'units_per_cpu_s'):.1f} "
            f"| {1e6 / _median(guarded, 'units_per_cpu_s'):.1f} | {added:+.1f} | {share} |"
        )
    return "\n".join(lines)


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in averages)


def _kinds(text: str) -> frozenset[str]:
    kinds = frozenset(k for k in text.split(",") if k)
    unknown = kinds - set(KINDS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown kind(s) {', '.join(sorted(unknown))}; valid: {', '.join(KINDS)}"
        )
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: 1 round of 1 s")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds (default 5)")
    parser.add_argument(
        "--profile",
        choices=tuple(CONFIGS),
        help="run this configuration once under cProfile and print where its time goes",
    )
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="unguarded vs LOOPWARDEN=warn with each workload kind left out in turn: "
        "what each kind adds under loopwarden",
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=KINDS,
        help="leave a workload kind out (repeatable)",
    )
    # The subprocess side (internal).
    parser.add_argument("--child", choices=tuple(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.5, help=argparse.SUPPRESS)
    parser.add_argument("--kinds", type=_kinds, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kinds = args.kinds if args.kinds is not None else frozenset(KINDS)
        run = (args.child, args.seconds or 5.0, args.warmup, kinds)
        if args.profile_out:
            profiler = cProfile.Profile()
            figures = profiler.runcall(child, *run)
            profiler.dump_stats(args.profile_out)
        else:
            figures = child(*run)
        print(json.dumps(figures), flush=True)
        # Skip the interpreter's teardown of Qt objects: the figures are out.
        os._exit(0)

    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    warmup = 0.2 if args.quick else 0.5
    kinds = frozenset(KINDS) - set(args.without)
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="loopwarden-devapp-") as workdir:
            out = os.path.join(workdir, "app.prof")
            _run_child(args.profile, seconds, warmup, kinds, workdir, out)
            pstats.Stats(out).sort_stats("tottime").print_stats(30)
        return 0
    if args.ablate:
        print(ablate(args.rounds or (1 if args.quick else 3), seconds, warmup))
        return 0
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopwarden-devapp-") as workdir:
        for _ in range(rounds):
            for config in CONFIGS:
                results[config].append(_run_child(config, seconds, warmup, kinds, workdir))
    print(
        f"Python {platform.python_version()}, {platform.machine()}, nproc={os.cpu_count()}, "
        f"PySide6 {importlib.metadata.version('PySide6')}, "
        f"qasync {importlib.metadata.version('qasync')}, "
        f"BlockBuster {importlib.metadata.version('blockbuster')}, "
        f"load average (1, 5, 15 min) {_load(load_before)} before, {_load(os.getloadavg())} after"
    )
    print(
        f"{rounds} interleaved rounds of {seconds:g} s per configuration (after {warmup:g} s "
        f"warm-up), workload: {', '.join(k for k in KINDS if k in kinds)}, ticks every {TICK_MS} ms"
    )
    print()
    print(render(results))
    sites = sorted({site for runs in results.values() for r in runs for site in r["finding_sites"]})
    if sites:
        print("\nloopwarden reported (false positives: nothing in this app blocks):")
        for site in sites:
            print(f"  {site}")
    print(
        "\nBlockBuster: nothing in the app raised under blockbuster_ctx(); allow_blocking has no "
        "BlockBuster equivalent, so both allowed os.stat calls are allowed there with "
        "can_block_in(this file, function)."
    )
    echoes = {c: _median(runs, "echoed_per_s") for c, runs in results.items()}
    print("\nechoed lines/s (sockets): " + ", ".join(f"{c} {v:.0f}" for c, v in echoes.items()))
    print(f"(total {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
