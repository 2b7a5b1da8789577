"""A 500-test synthetic suite, timed with and without ``--block-detect``.

Generates a throwaway project (async tests on pytest-asyncio, sync tests that
touch files, locks and sockets off the loop) and runs it in fresh pytest
processes, interleaved: plain, ``--block-detect``, and a BlockBuster autouse
fixture (the usual way to use BlockBuster in a suite). Prints the medians of
wall time per configuration and the ratios.

    python benchmarks/bench_suite.py            # 5 rounds
    python benchmarks/bench_suite.py --rounds 1 # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TESTS = 500

_MODULE = textwrap.dedent(
    """
    import asyncio
    import os
    import socket
    import threading

    import pytest


    @pytest.mark.parametrize("i", range({count}))
    async def test_async(i, tmp_path):
        await asyncio.sleep(0)
        await asyncio.to_thread(os.stat, tmp_path)
        lock = threading.Lock()
        with lock:
            pass


    @pytest.mark.parametrize("i", range({count}))
    def test_sync(i, tmp_path):
        os.stat(tmp_path)
        (tmp_path / "f").write_text("x")
        assert (tmp_path / "f").read_text() == "x"
        a, b = socket.socketpair()
        with a, b:
            a.sendall(b"x")
            assert b.recv(1) == b"x"
    """
)

_BLOCKBUSTER_CONFTEST = textwrap.dedent(
    """
    import pytest
    from blockbuster import blockbuster_ctx


    @pytest.fixture(autouse=True)
    def blockbuster():
        with blockbuster_ctx() as bb:
            yield bb
    """
)

# pytest-qt is switched off: it imports PySide6, whose import hook stats files
# on every import statement, and BlockBuster 1.5 then fails every async test
# that imports lazily (loopwarden excuses that hook by default).
_INI = (
    "[pytest]\nasyncio_mode = auto\n"
    "addopts = -q -p no:cacheprovider -p no:randomly -p no:pytest-qt\n"
)


def _project(root: Path, blockbuster: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(_INI)
    half = TESTS // 2
    (root / "test_suite.py").write_text(_MODULE.format(count=half))
    if blockbuster:
        (root / "conftest.py").write_text(_BLOCKBUSTER_CONFTEST)
    return root


def _run(root: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "LOOPWARDEN")}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"suite failed ({' '.join(args)}):\n{result.stdout[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loopwarden-suite-") as tmp:
        plain = _project(Path(tmp) / "plain", blockbuster=False)
        bb = _project(Path(tmp) / "bb", blockbuster=True)
        configs = {
            "plain pytest": (plain, ()),
            "pytest --block-detect": (plain, ("--block-detect",)),
            "BlockBuster autouse fixture": (bb, ()),
        }
        times: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(options.rounds):
            for name, (root, args) in configs.items():
                times[name].append(_run(root, *args))
    base = statistics.median(times["plain pytest"])
    print(f"{TESTS} tests, {options.rounds} interleaved rounds, median wall time per run:")
    print()
    print("| configuration | seconds | vs plain |")
    print("|---|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {median:.2f} | {median / base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
