"""The JSON report: a versioned, documented schema.

Layout (``version`` 1)::

    {
      "schema": "loopwarden-report",      # always this string
      "version": 1,                       # bumped on incompatible changes
      "generated_at": 1700000000.0,       # time.time() when written
      "started_at": 1699999990.0,         # start of the run
      "finished_at": 1700000000.0,        # end of the run
      "meta": {"command": "...", "mode": "record", ...},
      "summary": {
        "total": 12,                      # findings seen
        "kept": 12,                       # findings listed below
        "dropped": 0,                     # counted, not kept (memory bound)
        "groups": 3,
        "by_family": {"sleep": 10, "filesystem": 2}
      },
      "groups": [                         # one per place to fix, largest first
        {"user_caller": "app.py:12 in on_click", "primitive": "time.sleep",
         "family": "sleep", "suggestion": "...", "count": 10,
         "first_timestamp": ..., "last_timestamp": ..., "sample_stacks": 1,
         "primitives": {"time.sleep()": 10}, "families": {"sleep": 10},
         "library_callers": {},
         "blocked_ms_total": ...,                          # when durations were measured
         "stall_ms_total": ..., "stall_ms_max": ...,       # for stalls
         "tests": ["tests/test_x.py::test_y"]}             # pytest plugin only
      ],
      "findings": [                       # in order of occurrence
        {...Finding.to_dict()...,
         "nodeid": "tests/test_x.py::test_y",              # pytest plugin only:
         "phase": "call", "origin": "test code",           #   the test, its phase,
         "worker": "gw0"}                                  #   whose code, xdist worker
      ],
      "settings": {"mode": "fail", "scope": [], ...},     # pytest plugin only
      "timeline": {
        "calls":  [{"timestamp": ..., "group": 0, "duration_ms": null}, ...],
        "stalls": [{"timestamp": ..., "group": 2, "duration_ms": 312.0}, ...]
      }
    }

``group`` in timeline points indexes the groups in order of first
appearance (the order of their first finding in ``findings``).
:func:`load_report` also accepts a bare list of ``Finding.to_dict()`` objects
and the pytest plugin's older ``"loopwarden-pytest/1"`` files. The fields
marked "pytest plugin only" are optional: readers must not require them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopwarden.errors import ConfigError
from loopwarden.findings import Finding
from loopwarden.report.files import write_atomic
from loopwarden.report.grouping import FindingCollector

__all__ = [
    "LEGACY_PYTEST_SCHEMA",
    "SCHEMA",
    "TEST_FIELDS",
    "VERSION",
    "load_report",
    "merge_collectors",
    "report_from_data",
    "report_to_dict",
    "write_json",
]

SCHEMA = "loopwarden-report"
VERSION = 1
#: The pytest plugin's own schema before it wrote this one; still read.
LEGACY_PYTEST_SCHEMA = "loopwarden-pytest/1"
#: Optional per-finding fields the pytest plugin adds (kept in ``details`` in memory).
TEST_FIELDS: tuple[str, ...] = ("nodeid", "phase", "origin", "worker")


def _finding_to_dict(finding: Finding) -> dict[str, Any]:
    data = finding.to_dict()
    details = data.get("details")
    if isinstance(details, dict) and any(name in details for name in TEST_FIELDS):
        details = dict(details)
        for name in TEST_FIELDS:
            if name in details:
                data[name] = details.pop(name)
        data["details"] = details
    return data


def report_to_dict(collector: FindingCollector) -> dict[str, Any]:
    """The JSON-ready report of everything ``collector`` gathered."""
    calls, stalls = collector.timeline()
    groups = collector.groups()
    findings = collector.findings
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "generated_at": time.time(),
        "started_at": collector.started_at,
        "finished_at": collector.end_time,
        "meta": dict(collector.meta),
        "summary": {
            "total": collector.total,
            "kept": len(findings),
            "dropped": collector.dropped,
            "groups": len(groups),
            "by_family": collector.by_family(),
        },
        "groups": [group.to_dict() for group in groups],
        "findings": [_finding_to_dict(finding) for finding in findings],
        "timeline": {
            "calls": [_point(p.timestamp, p.group, p.duration_ms) for p in calls],
            "stalls": [_point(p.timestamp, p.group, p.duration_ms) for p in stalls],
        },
    }


def _point(timestamp: float, group: int, duration_ms: float | None) -> dict[str, Any]:
    return {"timestamp": timestamp, "group": group, "duration_ms": duration_ms}


def write_json(collector: FindingCollector, path: str | os.PathLike[str]) -> Path:
    """Write the JSON report to ``path`` atomically (parent directories are created)."""
    # default=repr: a finding's ``details`` may hold values JSON cannot encode.
    text = json.dumps(report_to_dict(collector), indent=2, default=repr)
    return write_atomic(path, text + "\n")


def report_from_data(data: object) -> FindingCollector:
    """Rebuild a collector from a parsed JSON report (or a list of findings).

    Raises:
        ConfigError: if ``data`` is not a loopwarden report this version can read.
    """
    if isinstance(data, list):
        collector = FindingCollector(max_findings=max(1000, len(data)))
        collector.extend(_finding(item) for item in data)
        if collector.total:
            collector.started_at = min(f.timestamp for f in collector.findings)
            collector.finish(max(f.timestamp for f in collector.findings))
        return collector
    if isinstance(data, Mapping) and data.get("schema") == LEGACY_PYTEST_SCHEMA:
        findings = data.get("findings")
        if not isinstance(findings, list):
            raise ConfigError('"findings" is not a list')
        collector = report_from_data(findings)
        settings = data.get("settings")
        if isinstance(settings, Mapping):
            collector.meta.update(mode=settings.get("mode"), settings=dict(settings))
        return collector
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise ConfigError(
            f'not a loopwarden report: expected a JSON object with "schema": "{SCHEMA}" '
            "or a list of findings"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ConfigError(
            f"loopwarden report version {version!r} is not supported; "
            f"this loopwarden reads versions up to {VERSION}"
        )
    findings = [_finding(item) for item in data.get("findings", [])]
    collector = FindingCollector(
        max_findings=max(1000, len(findings)),
        stacks_per_group=max(5, len(findings)),
        started_at=float(data.get("started_at") or 0) or None,
    )
    collector.extend(findings)
    collector.restore_counts(data.get("groups", []))
    timeline = data.get("timeline")
    if isinstance(timeline, Mapping):
        collector.restore_timeline(timeline.get("calls", []), timeline.get("stalls", []))
    finished = data.get("finished_at")
    if isinstance(finished, (int, float)):
        collector.finish(float(finished))
    meta = data.get("meta")
    if isinstance(meta, Mapping):
        collector.meta.update(meta)
    return collector


def merge_collectors(collectors: Sequence[FindingCollector]) -> FindingCollector:
    """One report of several (e.g. the per-process files of an app and its children).

    Counts add up per place to fix; every kept finding and timeline point is kept.
    """
    findings = sorted(
        (finding for collector in collectors for finding in collector.findings),
        key=lambda finding: finding.timestamp,
    )
    merged = FindingCollector(
        max_findings=max(1000, len(findings)),
        stacks_per_group=max(5, len(findings)),
        started_at=min((c.started_at for c in collectors), default=None),
    )
    merged.extend(findings)
    merged.restore_counts(g.to_dict() for c in collectors for g in c.groups())
    index_of = {group.key: index for index, group in enumerate(merged.groups_in_order())}
    series: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for collector in collectors:
        keys = [group.key for group in collector.groups_in_order()]
        for points, target in zip(collector.timeline(), series, strict=True):
            for point in points:
                if 0 <= point.group < len(keys) and keys[point.group] in index_of:
                    target.append(
                        _point(point.timestamp, index_of[keys[point.group]], point.duration_ms)
                    )
    for target in series:
        target.sort(key=lambda point: float(point["timestamp"]))
    merged.restore_timeline(*series)
    merged.finish(max(c.end_time for c in collectors))
    for collector in reversed(collectors):
        merged.meta.update(collector.meta)
    merged.meta["merged_reports"] = len(collectors)
    return merged


def _finding(item: object) -> Finding:
    if not isinstance(item, Mapping):
        raise ConfigError(f"a finding in the report is not a JSON object: {item!r}")
    data = dict(item)
    tests = {name: data.pop(name) for name in TEST_FIELDS if name in data}
    if tests:
        details = data.get("details")
        data["details"] = {**(details if isinstance(details, Mapping) else {}), **tests}
    try:
        return Finding.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"a finding in the report is malformed: {exc}") from exc


def load_report(path: str | os.PathLike[str]) -> FindingCollector:
    """Read a JSON report written by :func:`write_json` (or a list of findings).

    Raises:
        ConfigError: if the file cannot be read or is not a loopwarden report.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read report {os.fspath(path)!r}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from exc
    return report_from_data(data)
