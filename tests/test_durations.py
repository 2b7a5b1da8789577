"""How long a reported call blocked: ``Finding.duration_ms`` (issue 15.4).

Real loops and real sleeps of a few milliseconds. Durations are only ever
checked from below (a sleep lasts at least as long as asked); never from above.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import loopwarden
from loophelpers import run_in_worker, run_on_loop
from loopwarden.findings import Finding, format_duration
from loopwarden.report import FindingCollector
from loopwarden.report.html_report import render_html
from loopwarden.report.json_report import report_to_dict

SLEEP_S = 0.02
SLEEP_MS = SLEEP_S * 1000.0


def test_a_reported_call_carries_its_wall_time() -> None:
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: time.sleep(SLEEP_S))
    (finding,) = warden.findings
    assert finding.duration_ms is not None
    assert finding.duration_ms >= SLEEP_MS
    assert finding.details["duration_ms"] == finding.duration_ms
    (site,) = warden.sites  # counted once the call returned, with its duration
    assert site.timed == 1 and site.total_duration_ms == finding.duration_ms
    assert site.max_duration_ms == finding.duration_ms


def test_on_finding_runs_after_the_call_and_sees_the_duration() -> None:
    seen: list[float | None] = []
    with loopwarden.guard(mode="record", on_finding=lambda f: seen.append(f.duration_ms)):
        run_on_loop(lambda: time.sleep(SLEEP_S))
    assert len(seen) == 1 and seen[0] is not None and seen[0] >= SLEEP_MS


def test_warn_mode_times_the_call_too() -> None:
    with pytest.warns(loopwarden.BlockingCallWarning), loopwarden.guard(mode="warn") as warden:
        run_on_loop(lambda: time.sleep(SLEEP_S))
    (finding,) = warden.findings
    assert finding.duration_ms is not None and finding.duration_ms >= SLEEP_MS


def test_raise_mode_has_no_duration_the_call_never_ran() -> None:
    seen: list[Finding] = []
    with (
        loopwarden.guard(mode="raise", on_finding=seen.append) as warden,
        pytest.raises(loopwarden.BlockingCallError),
    ):
        run_on_loop(lambda: time.sleep(SLEEP_S))
    (finding,) = warden.findings
    assert finding.duration_ms is None
    assert "duration_ms" not in finding.details
    assert seen == [finding]  # the callback still ran, before the error


def test_a_call_that_fails_is_timed_too(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with loopwarden.guard(mode="record") as warden, pytest.raises(FileNotFoundError):
        run_on_loop(lambda: open(missing, encoding="utf-8"))
    (finding,) = warden.findings
    assert finding.duration_ms is not None and finding.duration_ms >= 0.0


def test_an_iterating_call_is_timed_while_it_iterates(tmp_path: Path) -> None:
    for index in range(5):
        (tmp_path / f"d{index}").mkdir()
    seen: list[float | None] = []

    def walk_slowly() -> None:
        for _ in os.walk(tmp_path):
            pass

    def slow_step() -> None:
        # Iteration paused half-way by another reported call.
        gen = os.walk(tmp_path)
        next(gen)
        time.sleep(SLEEP_S)  # its own finding
        for _ in gen:
            pass

    with loopwarden.guard(mode="record", on_finding=lambda f: seen.append(f.duration_ms)) as w:
        run_on_loop(walk_slowly)
        run_on_loop(slow_step)
    walks = [f for f in w.findings if f.primitive == "os.walk"]
    assert len(walks) == 2 and all(f.duration_ms is not None for f in walks)
    # The callbacks ran once each iteration ended, with the accumulated time.
    assert len(seen) == 3 and all(d is not None and d > 0 for d in seen)


def test_off_the_loop_and_silent_calls_are_not_timed() -> None:
    with loopwarden.guard(mode="record") as warden:
        run_in_worker(lambda: time.sleep(0.001))
        run_on_loop(lambda: time.sleep(0))  # not blocking
    assert warden.findings == []


def test_round_trip_keeps_the_duration() -> None:
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: time.sleep(SLEEP_S))
    (finding,) = warden.findings
    data = finding.to_dict()
    assert data["duration_ms"] == finding.duration_ms  # also at the top level
    back = Finding.from_dict(data)
    assert back == finding
    assert back.duration_ms == finding.duration_ms


def test_format_duration() -> None:
    assert format_duration(None) == "?"
    assert format_duration(0.0123) == "0.012 ms"
    assert format_duration(1.234) == "1.23 ms"
    assert format_duration(312.46) == "312.5 ms"
    assert format_duration(1250.0) == "1.25 s"


def test_reports_total_per_call_site_and_timeline_widths() -> None:
    collector = FindingCollector()

    async def main() -> None:
        for _ in range(2):
            time.sleep(SLEEP_S)  # one call site, twice

    with loopwarden.guard(mode="record", on_finding=collector):
        asyncio.run(main())
    (group,) = collector.groups()
    assert group.timed == 2
    assert group.blocked_ms_total >= 2 * SLEEP_MS
    data = report_to_dict(collector)
    (json_group,) = data["groups"]
    assert json_group["blocked_ms_total"] == group.blocked_ms_total
    calls = data["timeline"]["calls"]
    assert len(calls) == 2 and all(p["duration_ms"] >= SLEEP_MS for p in calls)
    page = render_html(collector)
    assert "blocked " in page and "in total" in page
