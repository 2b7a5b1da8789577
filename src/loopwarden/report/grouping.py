"""Grouping findings by place to fix, with bounded memory.

A group is one line of *your* code (``Finding.user_caller``): everything the
statement on that line made block is one entry, so counts mean "places to
fix". ``open(path).read()`` is one group with ``builtins.open`` and
``io.TextIOWrapper.read`` as its primitives; a line that connects to sqlite,
executes and commits is one group with three. Stalls are grouped apart from
blocking calls on the same line. A loop that calls ``time.sleep`` ten
thousand times is one group with a count of 10 000.

:class:`FindingCollector` is what wardens and the CLI feed (it is a valid
``on_finding`` callback). Memory stays bounded however long the run:

* every finding is counted, in its group and per family;
* full findings are kept up to ``max_findings``; after that only findings
  whose stack is new for their group, up to ``stacks_per_group`` per group;
* the timeline keeps at most ``max_points`` points per series, thinned
  evenly (every second point dropped when full) so it still spans the run.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from loopwarden.findings import FAMILIES, Finding

__all__ = [
    "FindingCollector",
    "FindingGroup",
    "TimelinePoint",
    "duration_ms",
    "group_findings",
    "primitive_label",
    "site_key",
    "stall_duration_ms",
]

#: (place to fix, kind): kind is ``"stall"`` for stalls, ``"call"`` otherwise.
SiteKey = tuple[str, str]


def site_key(finding: Finding) -> SiteKey:
    """The place to fix a finding is grouped under: (user_caller, kind).

    ``kind`` is ``"stall"`` for stalls and ``"call"`` for blocking calls, so a
    statement's blocking calls share one group whatever their primitives.
    """
    return (finding.user_caller or finding.caller, _kind(finding.family))


def _kind(family: str) -> str:
    return "stall" if family == "stall" else "call"


def stall_duration_ms(finding: Finding) -> float | None:
    """The duration of a stall finding in milliseconds, or None."""
    value = finding.details.get("duration_ms")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def duration_ms(finding: Finding) -> float | None:
    """How long the finding blocked, in milliseconds, when that was measured.

    Stalls carry it in ``details["duration_ms"]``; blocking calls carry it
    once their duration is measured (a ``duration_ms`` attribute or detail).
    """
    value = getattr(finding, "duration_ms", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return stall_duration_ms(finding)


def primitive_label(primitive: str, details: dict[str, Any] | None = None) -> str:
    """``"time.sleep()"``; a call made by another one reads ``"X.flush() (via seek)"``."""
    via = (details or {}).get("via")
    label = f"{primitive}()"
    return f"{label} (via {via})" if isinstance(via, str) and via else label


def _start_time(finding: Finding, duration_ms: float | None) -> float:
    # A stall finding is made when the stall ends; its bar starts earlier.
    started = finding.details.get("started_at")
    if isinstance(started, (int, float)) and not isinstance(started, bool):
        return float(started)
    if duration_ms is not None and finding.family == "stall":
        return finding.timestamp - duration_ms / 1000.0
    return finding.timestamp


def _stack_key(finding: Finding) -> tuple[tuple[str, int], ...]:
    return tuple((frame.filename, frame.lineno) for frame in finding.stack)


@dataclasses.dataclass
class FindingGroup:
    """All findings of one place to fix (one line of your code).

    Attributes:
        user_caller: The line in your code (``"path:line in func"``).
        primitive: The first primitive seen there (``"stall"`` for stalls);
            :attr:`primitives` has them all.
        family: The family of the first finding; :attr:`families` has them all.
        suggestion: What to use instead (the first finding's); the distinct
            ones are in :attr:`suggestions`.
        count: How many findings the line produced.
        first_timestamp: ``time.time()`` of the first finding.
        last_timestamp: ``time.time()`` of the last finding.
        samples: Findings with distinct stacks, the first one first.
        stall_ms_total: For stalls: total stalled time, in milliseconds.
        stall_ms_max: For stalls: the longest stall, in milliseconds.
        primitives: Primitive label (``"builtins.open()"``, ``"X.flush() (via
            seek)"``) -> count, in order of first appearance.
        families: Family -> count, in order of first appearance.
        suggestions: The distinct suggestions, in order of first appearance.
        library_callers: Library frames the calls were made in
            (``Finding.library_caller``) -> count; empty for your own code.
        blocked_ms_total: Total measured time blocked (stalls and calls
            that carry a duration), in milliseconds; 0 when none was measured.
        timed: How many findings carried a duration.
    """

    user_caller: str
    primitive: str
    family: str
    suggestion: str
    count: int
    first_timestamp: float
    last_timestamp: float
    samples: list[Finding]
    stall_ms_total: float = 0.0
    stall_ms_max: float = 0.0
    primitives: dict[str, int] = dataclasses.field(default_factory=dict)
    families: dict[str, int] = dataclasses.field(default_factory=dict)
    suggestions: list[str] = dataclasses.field(default_factory=list)
    library_callers: dict[str, int] = dataclasses.field(default_factory=dict)
    blocked_ms_total: float = 0.0
    timed: int = 0
    _stack_keys: set[tuple[tuple[str, int], ...]] = dataclasses.field(
        default_factory=set, repr=False
    )

    @property
    def first(self) -> Finding:
        """The first finding of this site."""
        return self.samples[0]

    @property
    def kind(self) -> str:
        """``"stall"`` or ``"call"``."""
        return _kind(self.family)

    @property
    def key(self) -> SiteKey:
        """(user_caller, kind): see :func:`site_key`."""
        return (self.user_caller, self.kind)

    @property
    def what(self) -> str:
        """What blocked on this line, e.g. ``"builtins.open() + io.TextIOWrapper.read()"``.

        With counts when the line made several kinds of call and one of them
        more than once (``"sqlite3.connect() + sqlite3.Connection.execute() x3"``).
        """
        if len(self.primitives) <= 1:
            return next(iter(self.primitives), primitive_label(self.primitive))
        return " + ".join(
            label if count == 1 else f"{label} x{count}" for label, count in self.primitives.items()
        )

    def add(self, finding: Finding) -> None:
        """Count ``finding`` in this group's details (not its samples)."""
        self.count += 1
        self.first_timestamp = min(self.first_timestamp, finding.timestamp)
        self.last_timestamp = max(self.last_timestamp, finding.timestamp)
        label = primitive_label(finding.primitive, finding.details)
        self.primitives[label] = self.primitives.get(label, 0) + 1
        self.families[finding.family] = self.families.get(finding.family, 0) + 1
        if finding.suggestion not in self.suggestions:
            self.suggestions.append(finding.suggestion)
        if finding.library_caller:
            where = finding.library_caller
            self.library_callers[where] = self.library_callers.get(where, 0) + 1
        duration = duration_ms(finding)
        if duration is not None:
            self.blocked_ms_total += duration
            self.timed += 1
            if finding.family == "stall":
                self.stall_ms_total += duration
                self.stall_ms_max = max(self.stall_ms_max, duration)

    def to_dict(self) -> dict[str, Any]:
        """Summary of the group for the JSON report (findings are listed separately)."""
        data: dict[str, Any] = {
            "user_caller": self.user_caller,
            "primitive": self.primitive,
            "family": self.family,
            "suggestion": self.suggestion,
            "count": self.count,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "sample_stacks": len(self.samples),
            "primitives": dict(self.primitives),
            "families": dict(self.families),
            "library_callers": dict(self.library_callers),
        }
        if self.timed:
            data["blocked_ms_total"] = self.blocked_ms_total
        if self.family == "stall":
            data["stall_ms_total"] = self.stall_ms_total
            data["stall_ms_max"] = self.stall_ms_max
        return data


def _new_group(finding: Finding, user_caller: str) -> FindingGroup:
    return FindingGroup(
        user_caller=user_caller,
        primitive=finding.primitive,
        family=finding.family,
        suggestion=finding.suggestion,
        count=0,
        first_timestamp=finding.timestamp,
        last_timestamp=finding.timestamp,
        samples=[],
    )


def _sort_key(group: FindingGroup) -> tuple[float, int, float]:
    # Largest first: by time blocked when durations were measured, else by count.
    return (-group.blocked_ms_total, -group.count, group.first_timestamp)


def group_findings(
    findings: Iterable[Finding], *, stacks_per_group: int = 5, in_order: bool = False
) -> list[FindingGroup]:
    """Group ``findings`` by place to fix, largest first (no memory bound).

    For callers that hold the findings anyway (the pytest plugin, one test's
    failure); :class:`FindingCollector` does the same with bounded memory.

    Args:
        findings: The findings, in the order they happened.
        stacks_per_group: Distinct stacks kept per group.
        in_order: Return the groups in the order their first finding
            happened instead of largest first.
    """
    groups: dict[SiteKey, FindingGroup] = {}
    for finding in findings:
        key = site_key(finding)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _new_group(finding, key[0])
        group.add(finding)
        if len(group.samples) < stacks_per_group:
            stack = _stack_key(finding)
            if stack not in group._stack_keys:
                group._stack_keys.add(stack)
                group.samples.append(finding)
    if in_order:
        return list(groups.values())
    return sorted(groups.values(), key=_sort_key)


@dataclasses.dataclass(frozen=True)
class TimelinePoint:
    """One mark on the timeline.

    Attributes:
        timestamp: ``time.time()`` of the finding. For stalls, when the stall
            started: ``details["started_at"]`` if the watchdog gives it, else
            the finding's timestamp minus its duration.
        group: Index of the finding's group in :attr:`FindingCollector.groups`
            order of creation.
        duration_ms: How long the loop was stuck (a stall) or blocked (a
            timed blocking call, drawn with its width); None when unknown.
    """

    timestamp: float
    group: int
    duration_ms: float | None = None


class _ThinnedSeries:
    """A list of points capped at ``limit``; halves itself evenly when full."""

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self.points: list[TimelinePoint] = []
        self._stride = 1
        self._seen = 0

    def add(self, point: TimelinePoint) -> None:
        if self._seen % self._stride == 0:
            self.points.append(point)
            if len(self.points) > self.limit:
                # Keep every second point: still spans the whole run, evenly.
                self.points = self.points[::2]
                self._stride *= 2
        self._seen += 1


class FindingCollector:
    """Collects findings into call-site groups with bounded memory.

    Thread-safe; pass it as ``on_finding`` (it is callable) or call :meth:`add`.

    Args:
        max_findings: Full findings kept before only new stacks are kept.
        stacks_per_group: Distinct stacks kept per call site.
        max_points: Timeline points kept per series (calls, stalls).

    Attributes:
        started_at: ``time.time()`` when the run started (creation time by default).
        finished_at: When :meth:`finish` was called, or None.
        meta: Free-form facts shown in reports (command, mode, Python version...).
    """

    def __init__(
        self,
        *,
        max_findings: int = 1000,
        stacks_per_group: int = 5,
        max_points: int = 2000,
        started_at: float | None = None,
    ) -> None:
        self.max_findings = max_findings
        self.stacks_per_group = max(1, stacks_per_group)
        self.started_at = time.time() if started_at is None else started_at
        self.finished_at: float | None = None
        self.meta: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._groups: dict[SiteKey, FindingGroup] = {}
        self._group_index: dict[SiteKey, int] = {}
        self._findings: list[Finding] = []
        self._families: Counter[str] = Counter()
        self._total = 0
        self._calls = _ThinnedSeries(max_points)
        self._stalls = _ThinnedSeries(max_points)

    # -- feeding ------------------------------------------------------------------

    def add(self, finding: Finding) -> None:
        """Count one finding and keep it if the memory budget allows."""
        key = site_key(finding)
        duration = duration_ms(finding)
        with self._lock:
            self._total += 1
            self._families[finding.family] += 1
            group = self._groups.get(key)
            if group is None:
                group = _new_group(finding, key[0])
                self._groups[key] = group
                self._group_index[key] = len(self._group_index)
            group.add(finding)
            new_stack = False
            if len(group.samples) < self.stacks_per_group:
                stack = _stack_key(finding)
                if stack not in group._stack_keys:
                    group._stack_keys.add(stack)
                    group.samples.append(finding)
                    new_stack = True
            if new_stack or len(self._findings) < self.max_findings:
                self._findings.append(finding)
            point = TimelinePoint(_start_time(finding, duration), self._group_index[key], duration)
            (self._stalls if finding.family == "stall" else self._calls).add(point)

    __call__ = add

    def extend(self, findings: Iterable[Finding]) -> None:
        """:meth:`add` each finding."""
        for finding in findings:
            self.add(finding)

    def finish(self, when: float | None = None) -> None:
        """Mark the end of the run (for the timeline and the duration)."""
        self.finished_at = time.time() if when is None else when

    # -- reading ------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Number of findings seen (kept or not)."""
        return self._total

    @property
    def dropped(self) -> int:
        """Findings counted but not kept in full (memory bound reached)."""
        return self._total - len(self._findings)

    @property
    def findings(self) -> list[Finding]:
        """The findings kept in full, in order of arrival."""
        with self._lock:
            return list(self._findings)

    def groups(self) -> list[FindingGroup]:
        """Places to fix, largest first: by time blocked when measured, else by count.

        Ties: first seen first.
        """
        with self._lock:
            groups = list(self._groups.values())
        return sorted(groups, key=_sort_key)

    def groups_in_order(self) -> list[FindingGroup]:
        """Call-site groups in order of first appearance (timeline indices)."""
        with self._lock:
            return list(self._groups.values())

    def by_family(self) -> dict[str, int]:
        """Finding counts per family, in :data:`~loopwarden.FAMILIES` order."""
        with self._lock:
            counts = dict(self._families)
        ordered: dict[str, int] = {f: counts.pop(f) for f in FAMILIES if f in counts}
        ordered.update(counts)
        return ordered

    def timeline(self) -> tuple[list[TimelinePoint], list[TimelinePoint]]:
        """(blocking-call points, stall points), each thinned to the point budget."""
        with self._lock:
            return list(self._calls.points), list(self._stalls.points)

    @property
    def end_time(self) -> float:
        """End of the run: :attr:`finished_at`, else the last finding, else now."""
        if self.finished_at is not None:
            return self.finished_at
        with self._lock:
            last = max((g.last_timestamp for g in self._groups.values()), default=None)
        return last if last is not None else time.time()

    # -- rebuilding from a JSON report ------------------------------------------------

    def restore_counts(self, groups: Iterable[Mapping[str, Any]]) -> None:
        """Apply group counts from a JSON report (findings may have been dropped).

        Findings must have been :meth:`add`-ed first; groups in ``groups``
        that have no kept finding are ignored.
        """
        # Reports written before groups were per line had one group per
        # (line, primitive): add those counts up per line.
        counts: Counter[SiteKey] = Counter()
        seen: dict[SiteKey, list[Mapping[str, Any]]] = {}
        for data in groups:
            family = str(data.get("family", ""))
            if not family:
                family = "stall" if data.get("primitive") == "stall" else "custom"
            key = (str(data.get("user_caller", "")), _kind(family))
            count = data.get("count")
            if isinstance(count, int) and not isinstance(count, bool):
                counts[key] += count
            seen.setdefault(key, []).append(data)
        with self._lock:
            for key, parts in seen.items():
                group = self._groups.get(key)
                if group is None:
                    continue
                count = counts[key]
                if count > group.count:
                    extra = count - group.count
                    self._total += extra
                    self._families[group.family] += extra
                    group.count = count
                for data in parts:
                    first, last = data.get("first_timestamp"), data.get("last_timestamp")
                    if isinstance(first, (int, float)):
                        group.first_timestamp = min(group.first_timestamp, float(first))
                    if isinstance(last, (int, float)):
                        group.last_timestamp = max(group.last_timestamp, float(last))
                if len(parts) == 1:
                    data = parts[0]
                    for name in ("stall_ms_total", "stall_ms_max", "blocked_ms_total"):
                        value = data.get(name)
                        if isinstance(value, (int, float)):
                            setattr(group, name, float(value))
                    for name in ("primitives", "families", "library_callers"):
                        value = data.get(name)
                        if isinstance(value, dict) and value:
                            setattr(
                                group,
                                name,
                                {str(k): v for k, v in value.items() if isinstance(v, int)},
                            )

    def restore_timeline(
        self, calls: Iterable[Mapping[str, Any]], stalls: Iterable[Mapping[str, Any]]
    ) -> None:
        """Replace the timeline with points from a JSON report."""
        with self._lock:
            for series, points in ((self._calls, calls), (self._stalls, stalls)):
                series.points = [
                    TimelinePoint(
                        float(p["timestamp"]),
                        int(p["group"]),
                        float(p["duration_ms"]) if p.get("duration_ms") is not None else None,
                    )
                    for p in points
                ]
