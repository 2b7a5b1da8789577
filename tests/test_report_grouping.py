"""Grouping by place to fix: what one statement does is one entry, with its details."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import loopwarden
from loopwarden.findings import format_duration
from loopwarden.report import (
    FindingCollector,
    format_summary,
    load_report,
    render_html,
    write_json,
)
from loopwarden.report.grouping import group_findings


async def _read_one_line(path: Path) -> str:
    return open(path, encoding="utf-8").read()  # one statement, two primitives


async def _sqlite_one_line(path: Path) -> None:
    # One statement: connect, execute and commit.
    (con := sqlite3.connect(path)).execute("create table t(x)").connection.commit()
    con.close()


async def _both(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello", encoding="utf-8")
    await _read_one_line(tmp_path / "data.txt")
    await _read_one_line(tmp_path / "data.txt")
    await _sqlite_one_line(tmp_path / "db.sqlite")


def _run(tmp_path: Path) -> tuple[FindingCollector, list[loopwarden.Finding]]:
    collector = FindingCollector()
    with loopwarden.guard(mode="record", on_finding=collector) as warden:
        asyncio.run(_both(tmp_path))
    return collector, list(warden.findings)


def test_one_statement_is_one_group_with_its_primitives(tmp_path: Path) -> None:
    collector, findings = _run(tmp_path)
    primitives = {f.primitive for f in findings}
    assert {"builtins.open", "io.TextIOWrapper.read", "sqlite3.connect"} <= primitives
    groups = collector.groups()
    by_function = {g.user_caller.rsplit(" in ", 1)[1]: g for g in groups}
    read = by_function["_read_one_line"]
    assert read.count == 4
    assert read.primitives == {"builtins.open()": 2, "io.TextIOWrapper.read()": 2}
    assert read.what == "builtins.open() x2 + io.TextIOWrapper.read() x2"
    db = by_function["_sqlite_one_line"]
    assert list(db.primitives) == [
        "sqlite3.connect()",
        "sqlite3.Connection.execute()",
        "sqlite3.Connection.commit()",
    ]
    assert db.families == {"database": 3}
    # The places to fix: the write_text line in _both, the read line, the sqlite line.
    assert len(groups) == 3
    summary = format_summary(collector)
    assert f"{collector.total} findings at 3 places to fix" in summary
    assert "builtins.open() x2 + io.TextIOWrapper.read() x2 blocked 4 times" in summary
    assert group_findings(findings)[0].key == groups[0].key


def test_json_round_trip_keeps_the_group_details(tmp_path: Path) -> None:
    collector, _ = _run(tmp_path)
    loaded = load_report(write_json(collector, tmp_path / "r.json"))
    assert [(g.key, g.count, g.primitives) for g in loaded.groups()] == [
        (g.key, g.count, g.primitives) for g in collector.groups()
    ]


def test_measured_durations_sort_groups_and_show_in_the_summary(tmp_path: Path) -> None:
    _, findings = _run(tmp_path)
    by_line: dict[str, list[loopwarden.Finding]] = {}
    for finding in findings:
        by_line.setdefault(finding.user_caller, []).append(finding)
    # The line that blocked least often blocked longest.
    rarest = min(by_line, key=lambda line: len(by_line[line]))
    timed = [
        dataclasses.replace(
            f, details={**f.details, "duration_ms": 40.0 if line == rarest else 1.0}
        )
        for line, group in by_line.items()
        for f in group
    ]
    collector = FindingCollector()
    collector.extend(timed)
    groups = collector.groups()
    assert groups[0].user_caller == rarest
    assert groups[0].blocked_ms_total == 40.0 * len(by_line[rarest])
    assert groups[0].timed == len(by_line[rarest])
    summary = format_summary(collector)
    assert f"{format_duration(40.0 * len(by_line[rarest]))} in all" in summary


def test_html_card_names_every_primitive_of_the_line(tmp_path: Path) -> None:
    collector, _ = _run(tmp_path)
    page = render_html(collector)
    assert "builtins.open() x2 + io.TextIOWrapper.read() x2" in page
    assert "sqlite3.connect() + sqlite3.Connection.execute() + sqlite3.Connection.commit()" in page
