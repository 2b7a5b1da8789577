"""Ctrl-C at the wrong moment: asynchronous exceptions inside checked calls and guard().

Every test interrupts loopwarden's own code at every program point it passes
(:mod:`interrupts`), then checks that nothing was left behind.
"""

from __future__ import annotations

import asyncio
import threading
import time

import loopwarden
from interrupts import injection_points, interrupted
from loopwarden import engine


def test_interrupt_inside_a_checked_call_never_silences_the_thread() -> None:
    def blocking_call() -> None:
        time.sleep(0.001)

    async def main() -> list[str]:
        failures: list[str] = []
        with loopwarden.guard(mode="record") as warden:
            points = injection_points(blocking_call)
            assert len(points) > 10  # the checked call really was traced
            for point in points:
                failure = interrupted(point, blocking_call)
                if failure:
                    failures.append(failure)
                    continue
                before = len(warden.findings)
                blocking_call()  # must still be reported
                if len(warden.findings) != before + 1:
                    failures.append(f"nothing reported after an interrupt at {point}")
                if threading.get_ident() in engine.calls_in_progress:
                    failures.append(f"call left in progress after an interrupt at {point}")
        return failures

    assert asyncio.run(main()) == []
