"""Reports: grouping with bounded memory, terminal summary, JSON round-trip, HTML."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import time
from pathlib import Path

import pytest

import loopwarden
from loopwarden import ConfigError, Finding
from loopwarden.report import (
    SCHEMA,
    VERSION,
    FindingCollector,
    format_summary,
    load_report,
    print_summary,
    render_html,
    report_from_data,
    write_json,
    write_report,
)


async def _sleepy() -> None:
    for _ in range(4):
        time.sleep(0.001)


async def _reader(path: Path) -> None:
    path.read_text(encoding="utf-8")


async def _both(path: Path) -> None:
    await _sleepy()
    await _reader(path)
    await asyncio.to_thread(time.sleep, 0.001)  # off the loop: no finding


def recorded_run(tmp_path: Path) -> tuple[FindingCollector, list[Finding]]:
    """A real run under detection: 4 sleeps at one line, 1 read at another."""
    data = tmp_path / "data.txt"
    data.write_text("hello", encoding="utf-8")
    collector = FindingCollector()
    with loopwarden.guard(mode="record", on_finding=collector) as warden:
        asyncio.run(_both(data))
    collector.finish()
    return collector, list(warden.findings)


def test_findings_are_grouped_by_call_site(tmp_path: Path) -> None:
    collector, findings = recorded_run(tmp_path)
    assert collector.total == len(findings) == 5
    groups = collector.groups()
    assert [(g.primitive, g.count) for g in groups] == [
        ("time.sleep", 4),
        ("pathlib.Path.read_text", 1),
    ]
    sleep_group = groups[0]
    assert "_sleepy" in sleep_group.user_caller
    assert sleep_group.first is findings[0]
    assert len(sleep_group.samples) == 1  # one line, one stack
    assert sleep_group.suggestion == findings[0].suggestion
    assert collector.by_family() == {"sleep": 4, "filesystem": 1}


def test_memory_stays_bounded_for_huge_runs(tmp_path: Path) -> None:
    _, findings = recorded_run(tmp_path)
    template = findings[0]
    collector = FindingCollector(max_findings=50, stacks_per_group=3, max_points=100)
    start = template.timestamp
    for i in range(20_000):
        # The same call site seen again and again, from a few different stacks.
        stack = (*template.stack[:-1], template.stack[-1]._replace(lineno=1000 + i % 7))
        collector.add(dataclasses.replace(template, stack=stack, timestamp=start + i * 0.001))
    (group,) = collector.groups()
    assert group.count == collector.total == 20_000
    assert len(group.samples) == 3
    assert len(collector.findings) <= 50 + 3
    assert collector.dropped == 20_000 - len(collector.findings)
    calls, stalls = collector.timeline()
    assert stalls == [] and 50 <= len(calls) <= 100
    # Thinned evenly: the points still span most of the run.
    assert calls[0].timestamp == start
    assert calls[-1].timestamp - start > 0.5 * 20_000 * 0.001
    summary = format_summary(collector)
    assert "20000 times" in summary
    assert summary.count("time.sleep") == 1  # one block, not 20 000 lines


def test_stalls_are_grouped_with_durations(tmp_path: Path) -> None:
    _, findings = recorded_run(tmp_path)
    base = findings[0]
    collector = FindingCollector(started_at=base.timestamp - 1)
    for duration in (120.0, 340.0):
        collector.add(
            dataclasses.replace(
                base,
                primitive="stall",
                family="stall",
                details={"duration_ms": duration},
                timestamp=base.timestamp + duration / 1000,
            )
        )
    (group,) = collector.groups()
    assert (group.count, group.stall_ms_max, group.stall_ms_total) == (2, 340.0, 460.0)
    _, stalls = collector.timeline()
    # A stall's bar starts when the stall started: timestamp minus duration.
    assert [p.timestamp for p in stalls] == pytest.approx([base.timestamp, base.timestamp])
    assert "stalled 2 times, longest 340 ms" in format_summary(collector)


def test_terminal_summary_colours_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector, _ = recorded_run(tmp_path)
    plain = format_summary(collector)
    assert "\033[" not in plain
    assert plain.startswith("loopwarden: 5 findings at 2 places to fix")
    assert "fix: " in plain and "time.sleep(0.001)" in plain  # the source line is shown
    assert "\033[" in format_summary(collector, color=True)

    stream = io.StringIO()  # not a TTY
    print_summary(collector, stream)
    assert "\033[" not in stream.getvalue()

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = FakeTTY()
    monkeypatch.delenv("NO_COLOR", raising=False)
    print_summary(collector, tty)
    assert "\033[" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    no_color = FakeTTY()
    print_summary(collector, no_color)
    assert "\033[" not in no_color.getvalue()


def test_summary_of_a_clean_run() -> None:
    assert "no blocking calls" in format_summary(FindingCollector())


def test_json_round_trip(tmp_path: Path) -> None:
    collector, findings = recorded_run(tmp_path)
    collector.meta["command"] = "pytest"
    path = write_json(collector, tmp_path / "out" / "report.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["schema"], data["version"]) == (SCHEMA, VERSION) == ("loopwarden-report", 1)
    assert data["summary"]["total"] == 5 and data["summary"]["dropped"] == 0
    assert len(data["findings"]) == 5
    assert data["findings"][0]["message"] == findings[0].message

    loaded = load_report(path)
    assert loaded.findings == findings
    assert [(g.key, g.count) for g in loaded.groups()] == [
        (g.key, g.count) for g in collector.groups()
    ]
    assert loaded.meta["command"] == "pytest"
    assert loaded.timeline() == collector.timeline()
    # A bare list of Finding.to_dict() objects is accepted too.
    bare = report_from_data([f.to_dict() for f in findings])
    assert bare.findings == findings


def test_json_round_trip_keeps_counts_of_dropped_findings(tmp_path: Path) -> None:
    _, findings = recorded_run(tmp_path)
    collector = FindingCollector(max_findings=2)
    for i in range(30):
        collector.add(dataclasses.replace(findings[0], timestamp=findings[0].timestamp + i))
    loaded = report_from_data(json.loads(json.dumps(collector_dict(collector))))
    assert loaded.total == 30
    assert loaded.groups()[0].count == 30
    assert len(loaded.findings) == 2


def collector_dict(collector: FindingCollector) -> dict[str, object]:
    from loopwarden.report import report_to_dict

    return report_to_dict(collector)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schema": "other"}, "not a loopwarden report"),
        ({"schema": SCHEMA, "version": VERSION + 1}, "not supported"),
        ({"schema": SCHEMA, "version": 1, "findings": [{"primitive": "x"}]}, "malformed"),
        ("text", "not a loopwarden report"),
    ],
)
def test_bad_json_reports_are_config_errors(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        report_from_data(data)


def test_write_report_picks_the_format_by_suffix(tmp_path: Path) -> None:
    collector, _ = recorded_run(tmp_path)
    assert json.loads(write_report(collector, tmp_path / "r.json").read_text())["version"] == 1
    assert write_report(collector, tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ConfigError, match=r"\.json or \.html"):
        write_report(collector, tmp_path / "r.txt")


def test_html_contains_every_group_and_is_self_contained(tmp_path: Path) -> None:
    collector, _ = recorded_run(tmp_path)
    page = render_html(collector)
    for number, group in enumerate(collector.groups(), start=1):
        assert f'id="g{number}"' in page
        assert group.primitive in page
        assert group.user_caller.rsplit(" in ", 1)[-1] in page
        assert f"#{number} {group.primitive}" in page  # its timeline lane
    assert page.count('<section class="group"') == len(collector.groups())
    assert "<svg" in page and "<details open>" in page
    assert "4 times" in page
    # Nothing is fetched: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<script|<link|<img|@import|url\(|https://", page)


def test_html_escapes_what_it_shows(tmp_path: Path) -> None:
    _, findings = recorded_run(tmp_path)
    nasty = dataclasses.replace(
        findings[0], user_caller="<script>alert(1)</script>:1 in f", suggestion="Use <b>x</b>"
    )
    collector = FindingCollector()
    collector.add(nasty)
    page = render_html(collector)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>x</b>" not in page


def test_html_for_a_clean_run() -> None:
    assert "No blocking calls" in render_html(FindingCollector())


def test_collector_is_thread_safe(tmp_path: Path) -> None:
    import threading

    _, findings = recorded_run(tmp_path)
    collector = FindingCollector(max_findings=100)

    def feed() -> None:
        for _ in range(2000):
            for finding in findings:
                collector.add(finding)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert collector.total == 4 * 2000 * len(findings)
    assert sum(g.count for g in collector.groups()) == collector.total
    assert len(collector.findings) == 100


def test_html_draws_stalls_on_the_timeline(tmp_path: Path) -> None:
    _, findings = recorded_run(tmp_path)
    collector = FindingCollector(started_at=findings[0].timestamp - 1)
    collector.add(
        dataclasses.replace(
            findings[0], primitive="stall", family="stall", details={"duration_ms": 340.0}
        )
    )
    collector.add(findings[0])
    page = render_html(collector)
    assert "stall of 340 ms" in page
    assert "longest 340 ms" in page
    assert "#1 stall" in page or "#2 stall" in page
