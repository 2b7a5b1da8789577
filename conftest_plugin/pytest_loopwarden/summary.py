"""What the plugin prints: one test phase's failure, and the end-of-run summary.

Both group findings by place to fix (:mod:`loopwarden.report.grouping`): one
line of the user's code, with what it made block and how often. A failure
lists a phase's places in the order they happened; the summary lists the
run's places largest first, capped so it fits a screen (``-q`` smaller, ``-v``
more, ``-vv`` all), and points to the full report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loopwarden.findings import format_duration
from loopwarden.report.grouping import FindingGroup, group_findings, site_key
from loopwarden.report.terminal import library_lines, more_places, short_path
from pytest_loopwarden.records import ORIGINS, Record, kept_because

__all__ = ["FOOTER", "max_places", "phase_failure", "summary_lines"]

#: Said once per run, under the summary, when a phase failed for findings.
FOOTER = (
    "loopwarden: the calls were recorded even if an exception was swallowed (slot, callback, "
    "except clause). Accept one with @pytest.mark.allow_blocking(..., reason=...)."
)

_MAX_TESTS_SHOWN = 3


def max_places(verbosity: int) -> int | None:
    """How many places to fix the summary shows: ``-q`` 5, default 10, ``-v`` 30, ``-vv`` all."""
    if verbosity < 0:
        return 5
    return (10, 30)[verbosity] if verbosity < 2 else None


def _grouped(
    records: Sequence[Record], *, in_order: bool
) -> list[tuple[FindingGroup, list[Record]]]:
    by_key: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        by_key.setdefault(site_key(record.finding), []).append(record)
    groups = group_findings((r.finding for r in records), in_order=in_order)
    return [(group, by_key[group.key]) for group in groups]


def _source(group: FindingGroup) -> str:
    for frame in reversed(group.first.stack):
        if str(frame) == group.user_caller:
            return frame.source_line()
    return ""


def _what(group: FindingGroup) -> str:
    """``"time.sleep(), 3 calls"``, ``"event loop stalled for 312 ms"``."""
    if group.kind == "stall":
        if group.count == 1:
            return f"event loop stalled for {group.stall_ms_max:.0f} ms"
        return (
            f"event loop stalled {group.count} times, longest {group.stall_ms_max:.0f} ms, "
            f"{group.stall_ms_total:.0f} ms in all"
        )
    text = group.what
    if group.count > 1:
        text += f", {group.count} calls"
    return text


def _blocked(group: FindingGroup) -> str:
    """``", blocked 12.3 ms"`` for timed calls (at the end of a line); "" otherwise."""
    if group.kind == "stall" or not group.timed:
        return ""
    return f", blocked {format_duration(group.blocked_ms_total)}"


def _label(records: Sequence[Record], scope: Sequence[str]) -> str:
    """Whose code blocked, in plain words; with a scope, why the finding was kept.

    Nothing is said for your own code when no scope is set.
    """
    origin = records[0].origin
    parts = [] if origin == ORIGINS[1] else [origin]
    if scope:
        why = kept_because(records[0].finding, scope)
        if why:
            parts.append(why)
    return f" [{'; '.join(parts)}]" if parts else ""


def _counted(records: Sequence[Record]) -> str:
    """``"3 blocking calls"``, ``"1 stall"``, ``"2 blocking calls and 1 stall"``."""
    stalls = sum(1 for r in records if r.finding.family == "stall")
    calls = len(records) - stalls
    counted = []
    if calls or not stalls:
        counted.append(f"{calls} blocking call{'s' if calls != 1 else ''}")
    if stalls:
        counted.append(f"{stalls} stall{'s' if stalls != 1 else ''}")
    return " and ".join(counted)


def phase_failure(
    phase: str,
    records: Sequence[Record],
    mode: str,
    scope: Sequence[str] = (),
    verbosity: int = 0,
) -> str:
    """The failure text for one test phase: its places to fix, in the order they happened.

    In the spirit of pytest-qt's "Exceptions caught in Qt event loop". As many
    places as the summary shows for ``verbosity`` (:func:`max_places`); the
    rest are counted.
    """
    grouped = _grouped(records, in_order=True)
    places = f"{len(grouped)} place{'s' if len(grouped) != 1 else ''} to fix"
    lines = [
        f"loopwarden: {_counted(records)} on an event-loop thread during {phase.upper()} "
        f"(--block-detect={mode}), at {places}, in the order they happened:"
    ]
    cap = max_places(verbosity)
    shown = grouped if cap is None else grouped[:cap]
    for number, (group, group_records) in enumerate(shown, 1):
        first = group.first
        lines.append(
            f"{number}) {_what(group)}{_label(group_records, scope)} on thread "
            f"{first.thread_name!r} ({first.loop}){_blocked(group)}"
        )
        lines.append(f"   at {group.user_caller}")
        source = _source(group)
        if source:
            lines.append(f"      {source}")
        lines.extend(library_lines(group, "   "))
        if not group.library_callers and first.caller != group.user_caller:
            lines.append(f"   called {first.primitive}() from {first.caller}")
        for suggestion in group.suggestions:
            lines.append(f"   suggestion: {suggestion}")
    hidden = grouped[len(shown) :]
    if hidden:
        more = sum(g.count for g, _ in hidden)
        lines.append(f"{more_places(len(hidden), more)} in this phase (-v shows more, -vv all)")
    return "\n".join(lines)


def summary_lines(
    records: Sequence[Record],
    *,
    verbosity: int = 0,
    scope: Sequence[str] = (),
    report: Path | None = None,
    failed: bool = False,
) -> tuple[str, list[str]]:
    """The end-of-run summary: a title, and lines grouped by place to fix, largest first.

    Args:
        records: Every finding of the run.
        verbosity: pytest's verbosity (``-q`` is -1): how many places and details.
        scope: ``--block-detect-scope``, to say why a finding was kept.
        report: Where the full report was written, if anywhere.
        failed: Some phase failed for its findings: add the :data:`FOOTER`.
    """
    grouped = _grouped(records, in_order=False)
    places = f"{len(grouped)} place{'s' if len(grouped) != 1 else ''} to fix"
    title = f"loopwarden: {_counted(records)} at {places}"
    cap = max_places(verbosity)
    shown = grouped if cap is None else grouped[:cap]
    lines: list[str] = []
    for number, (group, group_records) in enumerate(shown, 1):
        lines.append(
            f"{number:>2}. {group.count}x {_what_short(group)} at {short_path(group.user_caller)}"
            f"{_label(group_records, scope)}{_blocked(group)}"
        )
        if verbosity < 0:
            continue
        tests = sorted({r.nodeid for r in group_records})
        listed = ", ".join(tests[:_MAX_TESTS_SHOWN])
        if len(tests) > _MAX_TESTS_SHOWN:
            listed += f" (+{len(tests) - _MAX_TESTS_SHOWN} more)"
        lines.append(f"    tests: {listed}")
        lines.extend(library_lines(group, "    "))
        for suggestion in group.suggestions:
            lines.append(f"    suggestion: {suggestion}")
    hidden = grouped[len(shown) :]
    if hidden:
        more = sum(g.count for g, _ in hidden)
        lines.append(f"{more_places(len(hidden), more)} (-v shows more, -vv all)")
    if report is not None:
        lines.append(f"Full report: {report}")
    elif hidden or verbosity < 0:
        lines.append("Every finding with its stack: --block-detect-report=findings.json")
    if failed:
        lines.append(FOOTER)
    return title, lines


def _what_short(group: FindingGroup) -> str:
    if group.kind == "stall":
        if group.count == 1:
            return f"event loop stalled for {group.stall_ms_max:.0f} ms"
        return (
            f"event loop stalled (longest {group.stall_ms_max:.0f} ms, "
            f"{group.stall_ms_total:.0f} ms in all)"
        )
    return group.what
