"""The stall watchdog: one detector, reporting findings of family ``"stall"``.

The watchdog thread measures how responsive each guarded loop is and reports
a loop that does not come back within ``stall_ms``; :mod:`.watcher` explains
how. The package holds the whole detector:

* :mod:`.watcher`: the watchdog thread, and starting/stopping it with the
  wardens that set ``stall_ms``;
* :mod:`.heartbeats`: the per-loop heartbeats (asyncio and Qt) and finding
  running loops on other threads' stacks;
* :mod:`.loop_starts`: the hook that tells the watchdog when a loop starts;
* :mod:`.findings`: sampling a stalled stack and turning it into a finding.

It imports the core (engine, threads, frames, findings, config); the core
does not import it, except :mod:`loopwarden.warden`, which starts and stops
it with a warden (see the architecture page of the docs).
"""

from __future__ import annotations

from loopwarden.watchdog.watcher import (
    DEFAULT_STALL_MS,
    Watchdog,
    attach,
    check_stall_ms,
    current_watchdog,
    detach,
    parse_stall_ms,
)

__all__ = [
    "DEFAULT_STALL_MS",
    "Watchdog",
    "attach",
    "check_stall_ms",
    "current_watchdog",
    "detach",
    "parse_stall_ms",
]
