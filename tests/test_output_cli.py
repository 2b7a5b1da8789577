"""What ``loopwarden run`` prints: each finding once, and a summary that fits a screen."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import loopwarden
from loopwarden.report import FindingCollector, format_summary
from reports_helpers import BLOCKING_SCRIPT, run_cli


def test_warn_mode_prints_each_finding_once(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(BLOCKING_SCRIPT, encoding="utf-8")
    result = run_cli("run", "--mode", "warn", "app.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    # Each warning carries the advice; the closing summary only counts.
    assert err.count("BlockingCallWarning: Blocking call time.sleep()") == 1, err
    assert err.count("Use `await asyncio.sleep(seconds)`") == 1, err
    assert err.count("Run file I/O in a worker") == 2, err  # open() and read(): two warnings
    assert "loopwarden: 5 findings at 3 places to fix" in err
    assert "(each one was shown once, as a warning, when it happened)" in err


def test_summary_is_capped_largest_first(tmp_path: Path) -> None:
    # 15 places to fix: line n of a real source file sleeps n times.
    source = tmp_path / "places.py"
    source.write_text("\n".join("time.sleep(0)" for _ in range(15)), encoding="utf-8")
    codes = [compile("\n" * n + "time.sleep(0.0001)", str(source), "exec") for n in range(15)]

    async def main() -> None:
        for n, code in enumerate(codes):
            for _ in range(n + 1):
                exec(code, {"time": time})

    collector = FindingCollector()
    with loopwarden.guard(mode="record", on_finding=collector):
        asyncio.run(main())
    groups = collector.groups()
    assert sorted(g.count for g in groups) == list(range(1, 16))
    # Every call is timed (issue 15.4), so "largest" is the most time blocked.
    assert all(g.timed == g.count for g in groups)
    totals = [g.blocked_ms_total for g in groups]
    assert totals == sorted(totals, reverse=True)
    text = format_summary(collector)
    assert text.count("time.sleep() blocked") == 10  # the default cap
    assert re.search(r"\.\.\. and 5 more places to fix with \d+ findings", text)
    assert format_summary(collector, max_groups=20).count("time.sleep() blocked") == 15


def test_the_more_places_line_says_one_place_and_one_finding() -> None:
    from loopwarden.report.terminal import more_places

    assert more_places(1, 1) == "... and 1 more place to fix with 1 finding"
    assert more_places(2, 5) == "... and 2 more places to fix with 5 findings"
    assert more_places(1, 3) == "... and 1 more place to fix with 3 findings"
