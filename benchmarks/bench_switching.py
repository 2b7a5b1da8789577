"""Cost of switching detection on and off: guard() enter+exit against BlockBuster.

Interleaved round by round in one process, so that load from other processes hits every
configuration alike (each cell: the median over the rounds of µs per cycle, this thread's
CPU time)::

    python benchmarks/bench_switching.py            # 21 rounds, without and with PySide6
    python benchmarks/bench_switching.py --quick    # smoke run (CI)

Rows:

* ``guard()`` enter+exit as users get it: the registry replays the last install when
  nothing it depends on changed (the same rules, no module imported since, every target
  still holding its value);
* the same with the replay turned off, so every enter installs from scratch (what every
  enter cost before the replay);
* ``activate()`` + ``deactivate()``;
* BlockBuster's ``activate()`` + ``deactivate()`` with its default function list;
* ``guard()`` enter+exit while ``keep_installed()`` holds the patches (the pytest plugin's
  per-test switch).

Importing PySide6 adds the ``qt`` family's targets (loopwarden then patches about twice as
many attributes), so the table is printed without it, then with it. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import platform
import statistics
import time
from collections.abc import Callable

import blockbuster

import loopwarden
from loopwarden.registry import registry


def _guard_cycle() -> None:
    with loopwarden.guard(mode="record"):
        pass


def _from_scratch_cycle() -> None:
    registry._plan = None  # no replay: resolve, build and scan as a first install does
    with loopwarden.guard(mode="record"):
        pass


def _activate_cycle() -> None:
    loopwarden.activate(mode="record")
    loopwarden.deactivate()


def _bb_cycle_maker() -> Callable[[], None]:
    bb = blockbuster.BlockBuster()

    def cycle() -> None:
        bb.activate()
        bb.deactivate()

    return cycle


def _per_cycle_us(cycle: Callable[[], None], n: int) -> float:
    start = time.thread_time_ns()
    for _ in range(n):
        cycle()
    return (time.thread_time_ns() - start) / n / 1000


def measure(rounds: int, n: int) -> dict[str, float]:
    """Median µs per cycle of each configuration, interleaved round by round."""
    bb_cycle = _bb_cycle_maker()

    def kept_cycle() -> None:
        for _ in range(50):
            _guard_cycle()

    configurations: dict[str, Callable[[], float]] = {
        "lw guard() enter+exit (replays the last install)": lambda: _per_cycle_us(_guard_cycle, n),
        "lw guard() enter+exit, every install from scratch": lambda: _per_cycle_us(
            _from_scratch_cycle, n
        ),
        "lw activate() + deactivate()": lambda: _per_cycle_us(_activate_cycle, n),
        "bb activate() + deactivate()": lambda: _per_cycle_us(bb_cycle, n),
    }
    samples: dict[str, list[float]] = {name: [] for name in configurations}
    samples["lw guard() enter+exit, keep_installed() held"] = []
    for run in configurations.values():
        run()  # warm-up: caches, first install, plans
    for _ in range(rounds):
        for name, run in configurations.items():
            gc.collect()
            samples[name].append(run())
            # BlockBuster's deactivate() does not put every attribute back as the
            # same object, and a target that changed makes loopwarden's next
            # install start from scratch (a replay must write what a fresh
            # install would). One untimed cycle after each configuration gives
            # the next one loopwarden's steady state, as in an app that uses one tool.
            _guard_cycle()
        with loopwarden.keep_installed():
            gc.collect()
            held = _per_cycle_us(kept_cycle, n) / 50
        samples["lw guard() enter+exit, keep_installed() held"].append(held)
    return {name: statistics.median(values) for name, values in samples.items()}


def _patch_count() -> int:
    with loopwarden.guard(mode="record"):
        return len(registry._patches)


def _print_table(title: str, results: dict[str, float]) -> None:
    bb = results["bb activate() + deactivate()"]
    print(f"\n{title} ({_patch_count()} loopwarden patches)\n")
    print("| cycle | µs | vs BlockBuster |")
    print("|---|---:|---:|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} | {value / bb:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--cycles", type=int, default=20, help="cycles per round and cell")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 3 cycles")
    args = parser.parse_args()
    rounds, n = (2, 3) if args.quick else (args.rounds, args.cycles)
    print(
        f"CPython {platform.python_version()}, BlockBuster "
        f"{importlib.metadata.version('blockbuster')}, {rounds} interleaved rounds of {n} "
        "cycles, this thread's CPU time"
    )
    _print_table("Without PySide6", measure(rounds, n))
    try:
        import PySide6.QtCore  # the qt family's targets
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        print("\nPySide6 is not installed: no second table")
        return
    _print_table("With PySide6.QtCore and QtWidgets imported", measure(rounds, n))


if __name__ == "__main__":
    main()
