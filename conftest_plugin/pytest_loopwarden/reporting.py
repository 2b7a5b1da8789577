"""The JSON report file (the text the plugin prints is in :mod:`~pytest_loopwarden.summary`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_loopwarden.options import Settings
from pytest_loopwarden.records import Record

__all__ = ["group_by_site", "write_json_report"]

#: Version of the JSON report's layout; bump when keys change meaning.
REPORT_SCHEMA = "loopwarden-pytest/1"


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
            **_duration_keys(group),
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
