"""Text and JSON output: per-phase failures, the terminal summary, the report file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_loopwarden.options import Settings
from pytest_loopwarden.records import Record

__all__ = ["group_by_site", "phase_failure", "summary_lines", "write_json_report"]

#: Version of the JSON report's layout; bump when keys change meaning.
REPORT_SCHEMA = "loopwarden-pytest/1"

_MAX_TESTS_SHOWN = 3


def group_by_site(records: Iterable[Record]) -> list[list[Record]]:
    """Group records by call site (primitive + calling line), biggest group first."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault(record.site, []).append(record)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0].site))


def _source(record: Record) -> str:
    for frame in reversed(record.finding.stack):
        if str(frame) == record.finding.user_caller:
            return frame.source_line()
    return ""


def phase_failure(phase: str, records: Sequence[Record], mode: str) -> str:
    """The failure text for one test phase.

    In the spirit of pytest-qt's "Exceptions caught in Qt event loop".
    """
    count = len(records)
    lines = [
        f"loopwarden: {count} blocking call{'s' if count != 1 else ''} on an event-loop "
        f"thread during {phase.upper()} (--block-detect={mode}):"
    ]
    for number, group in enumerate(group_by_site(records), 1):
        first = group[0]
        finding = first.finding
        times = f", {len(group)} times" if len(group) > 1 else ""
        lines.append(
            f"{number}) {finding.primitive}() in {first.origin} on thread "
            f"{finding.thread_name!r} ({finding.loop}){times}"
        )
        lines.append(f"   at {finding.user_caller or finding.caller}")
        source = _source(first)
        if source:
            lines.append(f"      {source}")
        if finding.caller != finding.user_caller:
            lines.append(f"   called {finding.primitive}() from {finding.caller}")
        lines.append(f"   suggestion: {finding.suggestion}")
    lines.append(
        "The calls were recorded even if an exception was swallowed (slot, callback, "
        "except clause). Accept one with @pytest.mark.allow_blocking(..., reason=...)."
    )
    return "\n".join(lines)


def summary_lines(records: Sequence[Record]) -> list[str]:
    """The terminal summary: one entry per call site with its count and tests."""
    lines: list[str] = []
    for group in group_by_site(records):
        first = group[0]
        finding = first.finding
        tests = sorted({r.nodeid for r in group})
        shown = ", ".join(tests[:_MAX_TESTS_SHOWN])
        if len(tests) > _MAX_TESTS_SHOWN:
            shown += f" (+{len(tests) - _MAX_TESTS_SHOWN} more)"
        lines.append(
            f"{len(group)}x {finding.primitive}() at {finding.user_caller or finding.caller} "
            f"[{first.origin}]"
        )
        lines.append(f"    tests: {shown}")
        lines.append(f"    suggestion: {finding.suggestion}")
    return lines


def write_json_report(path: Path, settings: Settings, records: Sequence[Record]) -> None:
    """Write every record to ``path`` as JSON (parent directories are created)."""
    groups: list[dict[str, Any]] = [
        {
            "primitive": group[0].site[0],
            "site": group[0].site[1],
            "origin": group[0].origin,
            "count": len(group),
            "tests": sorted({r.nodeid for r in group}),
            "suggestion": group[0].finding.suggestion,
        }
        for group in group_by_site(records)
    ]
    data = {
        "schema": REPORT_SCHEMA,
        "settings": settings.to_dict(),
        "count": len(records),
        "findings": [record.to_dict() for record in records],
        "groups": groups,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
