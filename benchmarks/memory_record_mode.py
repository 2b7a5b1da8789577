"""Memory of a long record-mode run: N blocking calls on a running asyncio loop.

Prints the resident memory the findings cost (RSS after the run minus RSS
before it, and the peak), the findings kept in full and the exact count::

    python benchmarks/memory_record_mode.py --calls 1000000
    python benchmarks/memory_record_mode.py --calls 1000000 --max-findings 100000000  # unbounded

``--max-findings`` is passed to ``guard()`` when this loopwarden has the
option (older versions kept every finding). Nothing is asserted: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import os
import resource
import time
from typing import Any

import loopwarden


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def _block(calls: int, sites: int) -> None:
    # A few distinct lines, like an app: repeats aggregate per line.
    for index in range(calls):
        which = index % sites
        # os.stat: a real blocking filesystem call that costs microseconds.
        if which == 0:  # noqa: SIM114 - three distinct lines on purpose (three sites)
            os.stat(__file__)
        elif which == 1:
            os.stat(__file__)
        else:
            os.stat(__file__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--max-findings", type=int, default=None)
    args = parser.parse_args()
    options: dict[str, Any] = {"mode": "record"}
    has_limit = "max_findings" in inspect.signature(loopwarden.guard).parameters
    if args.max_findings is not None and has_limit:
        options["max_findings"] = args.max_findings
    gc.collect()
    before = _rss_mb()
    started = time.perf_counter()
    with loopwarden.guard(**options) as warden:
        asyncio.run(_block(args.calls, args.sites))
    elapsed = time.perf_counter() - started
    gc.collect()
    after = _rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000  # kB on Linux
    total = getattr(warden, "total", len(warden.findings))
    print(f"loopwarden {loopwarden.__version__} from {os.path.dirname(loopwarden.__file__)}")
    print(f"limit: {getattr(warden, 'max_findings', 'none (every finding kept)')}")
    print(f"calls: {args.calls:,}  counted: {total:,}  kept in full: {len(warden.findings):,}")
    if has_limit:
        counts = ", ".join(f"{s.caller.rsplit('/', 1)[-1]}: {s.count:,}" for s in warden.sites)
        print(f"per site: {counts}")
    print(f"memory held after the run: {after - before:.1f} MB (RSS {before:.0f} -> {after:.0f})")
    print(f"peak RSS: {peak:.0f} MB; time: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
