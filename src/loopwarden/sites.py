"""Per-call-site aggregates of a warden's findings: exact counts in bounded memory.

A warden keeps at most ``max_findings`` full :class:`~loopwarden.Finding`
objects (each holds a stack); everything it sees is also counted here, one
:class:`Site` per (primitive, place to fix). An app that blocks 100 times a
second for hours therefore costs one small record per line of code, not one
finding per call.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from loopwarden.errors import ConfigError
from loopwarden.findings import Finding

__all__ = ["DEFAULT_MAX_FINDINGS", "MAX_SITES", "OVERFLOW_SITE", "Site", "SiteTable"]

#: Full findings a warden keeps by default; later ones are only counted.
DEFAULT_MAX_FINDINGS = 10_000

#: Distinct sites counted one by one; beyond it (code generated at run time
#: with ever new file names) they share one :data:`OVERFLOW_SITE`, so even
#: that cannot grow memory without bound.
MAX_SITES = 10_000

#: The ``caller`` of the shared site past :data:`MAX_SITES`.
OVERFLOW_SITE = "(other call sites: too many distinct ones)"


def check_max_findings(value: object, *, where: str = "max_findings") -> int:
    """Validate a findings limit: a whole number >= 0 (``None``: the default).

    Raises:
        ConfigError: naming the valid values.
    """
    if value is None:
        return DEFAULT_MAX_FINDINGS
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < 0:
        raise ConfigError(
            f"invalid {where} {value!r}; valid values: a whole number >= 0 of full findings "
            f"to keep (default {DEFAULT_MAX_FINDINGS}); later findings are still counted"
        )
    return number


def duration_of(finding: Finding) -> float | None:
    """How long ``finding`` blocked in milliseconds, when it was measured.

    Read from a ``duration_ms`` attribute or ``details["duration_ms"]``.
    """
    value: Any = getattr(finding, "duration_ms", None)
    if value is None:
        value = finding.details.get("duration_ms")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


@dataclasses.dataclass
class Site:
    """Every finding of one primitive at one place to fix.

    Attributes:
        primitive: What blocked (``"stall"`` for stalls).
        family: Its family.
        caller: The place to fix (``Finding.user_caller``, else ``caller``).
        count: How many findings (exact, kept in full or not).
        first_timestamp: ``time.time()`` of the first one.
        last_timestamp: ``time.time()`` of the last one.
        total_duration_ms: Sum of the measured durations (0 if none).
        max_duration_ms: The longest measured duration (0 if none).
        timed: How many findings carried a duration.
        first: The first finding, kept in full whatever the limit.
    """

    primitive: str
    family: str
    caller: str
    count: int
    first_timestamp: float
    last_timestamp: float
    total_duration_ms: float
    max_duration_ms: float
    timed: int
    first: Finding

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the sample finding's stack."""
        data = dataclasses.asdict(self)
        data["first"] = self.first.message
        return data


_get_ident = threading.get_ident


class SiteTable:
    """Counts per site, one table per thread; the store behind :attr:`Warden.sites`.

    No lock on the hot path: each thread counts in its own table (a lock held
    when a Ctrl-C lands in the middle would silence every later finding), and
    readers merge the tables.
    """

    def __init__(self) -> None:
        # Thread id -> that thread's table. A dict, not a threading.local: one is
        # made per warden, so per test, and a local costs ~0.4 µs to create. Only
        # one live thread has a given id, so a table is never written by two
        # threads at once (a thread that reuses a dead one's id continues its
        # table: readers merge the tables anyway). setdefault is atomic.
        self._by_thread: dict[int, dict[tuple[str, str], Site]] = {}

    @property
    def _tables(self) -> list[dict[tuple[str, str], Site]]:
        return list(self._by_thread.values())

    def _own(self) -> dict[tuple[str, str], Site]:
        ident = _get_ident()
        table = self._by_thread.get(ident)
        if table is None:
            table = self._by_thread.setdefault(ident, {})
        return table

    def add(self, finding: Finding) -> None:
        """Count ``finding`` in its site."""
        key = (finding.primitive, finding.user_caller or finding.caller)
        duration = duration_of(finding)
        table = self._own()
        site = table.get(key)
        if site is None:
            if len(table) >= MAX_SITES:
                key = ("", OVERFLOW_SITE)
                site = table.get(key)
            if site is None:
                site = Site(
                    primitive=key[0] or "(various)",
                    family=finding.family,
                    caller=key[1],
                    count=0,
                    first_timestamp=finding.timestamp,
                    last_timestamp=finding.timestamp,
                    total_duration_ms=0.0,
                    max_duration_ms=0.0,
                    timed=0,
                    first=finding,
                )
                table[key] = site
        site.count += 1
        if finding.timestamp < site.first_timestamp:
            site.first_timestamp = finding.timestamp
        if finding.timestamp > site.last_timestamp:
            site.last_timestamp = finding.timestamp
        if duration is not None:
            site.timed += 1
            site.total_duration_ms += duration
            # max(), not an if: the same lines run whatever the duration
            # (tests/test_async_exceptions.py interrupts every line once).
            site.max_duration_ms = max(site.max_duration_ms, duration)

    def discard(self, finding: Finding) -> None:
        """Uncount ``finding`` (an expected call that ``expect_blocking`` took back)."""
        key = (finding.primitive, finding.user_caller or finding.caller)
        for table in self._tables:
            site = table.get(key)
            if site is None or site.count <= 0:
                continue
            site.count -= 1
            duration = duration_of(finding)
            if duration is not None:
                site.timed -= 1
                site.total_duration_ms -= duration
            if site.count <= 0:
                table.pop(key, None)
            return

    @property
    def total(self) -> int:
        """Findings counted, over every site and thread."""
        return sum(site.count for site in self.sites())

    def sites(self) -> list[Site]:
        """The sites, merged over threads, in order of their first finding (copies)."""
        merged: dict[tuple[str, str], Site] = {}
        for table in self._tables:
            for key, site in list(table.items()):
                seen = merged.get(key)
                if seen is None:
                    merged[key] = dataclasses.replace(site)
                    continue
                seen.count += site.count
                seen.timed += site.timed
                seen.total_duration_ms += site.total_duration_ms
                seen.max_duration_ms = max(seen.max_duration_ms, site.max_duration_ms)
                seen.last_timestamp = max(seen.last_timestamp, site.last_timestamp)
                if site.first_timestamp < seen.first_timestamp:
                    seen.first_timestamp = site.first_timestamp
                    seen.first = site.first
        return sorted(merged.values(), key=lambda site: site.first_timestamp)

    def clear(self) -> None:
        """Forget everything."""
        for table in self._tables:
            table.clear()
