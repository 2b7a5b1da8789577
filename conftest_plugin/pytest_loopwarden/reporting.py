"""The report file (the text the plugin prints is in :mod:`~pytest_loopwarden.summary`).

The plugin writes the same versioned schema as ``loopwarden run`` and
``LOOPWARDEN_REPORT`` (:mod:`loopwarden.report.json_report`), with the
optional test fields: each finding's ``nodeid``, ``phase``, ``origin`` and
``worker``, each group's ``tests``, and the plugin's ``settings``. So
``python -m loopwarden report findings.json -o report.html`` reads it, and
``--block-detect-report=report.html`` writes the HTML report directly.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loopwarden.report import FindingCollector, report_to_dict, write_html
from loopwarden.report.files import write_atomic
from loopwarden.report.grouping import site_key
from loopwarden.report.json_report import TEST_FIELDS
from pytest_loopwarden.options import Settings
from pytest_loopwarden.records import Record

__all__ = ["collector_of", "group_by_site", "write_report_file"]


def group_by_site(records: Iterable[Record]) -> list[list[Record]]:
    """Group records by call site (primitive + calling line), biggest group first."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault(record.site, []).append(record)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0].site))


def _duration_keys(group: Sequence[Record]) -> dict[str, float | None]:
    """Total and longest blocked time of a group (None when no call was timed)."""
    known = [d for d in (r.finding.duration_ms for r in group) if d is not None]
    return {"total_ms": sum(known) if known else None, "max_ms": max(known, default=None)}


def collector_of(settings: Settings, records: Sequence[Record]) -> FindingCollector:
    """Every record, with its test fields, in a collector (no memory bound: pytest holds them)."""
    findings = [
        dataclasses.replace(
            record.finding,
            details={
                **record.finding.details,
                **{name: getattr(record, name) for name in TEST_FIELDS},
            },
        )
        for record in records
    ]
    findings.sort(key=lambda finding: finding.timestamp)
    started = findings[0].timestamp if findings else None
    collector = FindingCollector(
        max_findings=len(findings), stacks_per_group=max(5, len(findings)), started_at=started
    )
    collector.extend(findings)
    collector.finish()
    collector.meta.update(
        command="pytest " + " ".join(sys.argv[1:]),
        mode=settings.mode,
        stall_ms=settings.stall_ms,
        settings=settings.to_dict(),
    )
    return collector


def write_report_file(path: Path, settings: Settings, records: Sequence[Record]) -> Path:
    """Write every record to ``path``: JSON for ``.json``, the HTML report for ``.html``."""
    collector = collector_of(settings, records)
    if path.suffix.lower() in (".html", ".htm"):
        return write_html(collector, path, title="loopwarden report (pytest)")
    data = report_to_dict(collector)
    data["settings"] = settings.to_dict()
    by_site: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        by_site.setdefault(site_key(record.finding), []).append(record)
    for group in data["groups"]:
        kind = "stall" if group["family"] == "stall" else "call"
        members = by_site.get((group["user_caller"], kind), [])
        group["tests"] = sorted({record.nodeid for record in members})
        group.update(_duration_keys(members))
    text: Any = json.dumps(data, indent=2, default=repr)
    return write_atomic(path, text + "\n")
