"""The terminal summary: one block per place to fix, colours only on a TTY."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from loopwarden.findings import StackFrame, format_duration
from loopwarden.frames import is_stdlib_file
from loopwarden.report.grouping import FindingCollector, FindingGroup

__all__ = [
    "format_summary",
    "group_head",
    "library_lines",
    "more_places",
    "print_summary",
    "relevant_frames",
    "short_path",
    "use_color",
]


def more_places(places: int, findings: int) -> str:
    """``"... and 2 more places to fix with 5 findings"``, singular where it is one.

    Args:
        places: How many places to fix are left out.
        findings: How many findings they have.
    """
    place = "place" if places == 1 else "places"
    finding = "finding" if findings == 1 else "findings"
    return f"... and {places} more {place} to fix with {findings} {finding}"


_RESET = "\033[0m"
_STYLES = {
    "bold": "\033[1m",
    "dim": "\033[2m",
    "red": "\033[31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "cyan": "\033[36m",
}


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


def short_path(location: str) -> str:
    """``location`` with the current directory's prefix removed, for reading."""
    cwd = os.getcwd() + os.sep
    return location[len(cwd) :] if location.startswith(cwd) else location


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        return "".join(_STYLES[s] for s in styles) + text + _RESET


def _frame_lines(frame: StackFrame, paint: _Painter) -> list[str]:
    lines = [f"      {short_path(str(frame))}"]
    source = frame.source_line()
    if source:
        lines.append("        " + paint(source, "dim"))
    return lines


def relevant_frames(stack: tuple[StackFrame, ...]) -> tuple[list[StackFrame], int]:
    """The frames worth reading, and how many were left out.

    Keeps every frame outside the standard library and loopwarden's launcher
    and, after the innermost of those (your line), the standard-library
    frames that lead to the primitive; drops the event loop's own machinery
    further out.
    """
    own = [not is_stdlib_file(f.filename) and not _is_tool_frame(f) for f in stack]
    last_own = max((i for i, mine in enumerate(own) if mine), default=-1)
    kept = [frame for i, frame in enumerate(stack) if i >= last_own or own[i]]
    return kept, len(stack) - len(kept)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_DEMO_DIR = os.path.join(_PACKAGE_DIR, "demo") + os.sep


def _is_tool_frame(frame: StackFrame) -> bool:
    # loopwarden's own launcher frames (cli, __main__, the demo runner) say
    # nothing about the app; the demo's app modules are "user" code.
    filename = frame.filename
    if not filename.startswith(_PACKAGE_DIR):
        return False
    return not filename.startswith(_DEMO_DIR) or filename == _DEMO_DIR + "__init__.py"


def group_head(group: FindingGroup) -> str:
    """``"builtins.open() + io.TextIOWrapper.read() blocked 2 times, 12 ms in all"``."""
    times = "once" if group.count == 1 else f"{group.count} times"
    if group.kind == "stall":
        return f"event loop stalled {times}, longest {group.stall_ms_max:.0f} ms"
    head = f"{group.what} blocked {times}"
    if group.timed:
        head += f", {format_duration(group.blocked_ms_total)} in all"
    return head


def library_lines(group: FindingGroup, indent: str = "    ") -> list[str]:
    """Where in a library the calls were made, and how to allow it (none for your code)."""
    if not group.library_callers:
        return []
    places = list(group.library_callers)
    line = f"{indent}inside library code at {short_path(places[0])}"
    if len(places) > 1:
        more = len(places) - 1
        line += f" (and {more} more library line{'s' if more != 1 else ''})"
    lines = [line]
    sample = next((f for f in group.samples if f.library_caller), None)
    if sample is not None and sample.allow_hint:
        lines.append(f"{indent}{sample.allow_hint}")
    return lines


def _group_block(index: int, group: FindingGroup, paint: _Painter, max_frames: int) -> list[str]:
    first = group.first
    families = "/".join(group.families) or group.family
    lines = [
        f"{index:>2}. "
        + paint(f"[{families}]", "yellow", "bold")
        + " "
        + paint(group_head(group), "bold"),
        f"    at {paint(short_path(group.user_caller), 'cyan')}",
        *library_lines(group),
        f"    on thread {first.thread_name!r} while {first.loop} was running",
    ]
    if first.stack:
        kept, _ = relevant_frames(first.stack)
        shown = kept[-max_frames:]
        hidden = len(first.stack) - len(shown)
        note = f", {hidden} library and event-loop frames hidden" if hidden else ""
        lines.append(f"    first stack (most recent call last{note}):")
        for frame in shown:
            lines.extend(_frame_lines(frame, paint))
    for suggestion in group.suggestions or [group.suggestion]:
        lines.append("    " + paint("fix: ", "green", "bold") + suggestion)
    return lines


def format_summary(
    collector: FindingCollector,
    *,
    color: bool = False,
    max_groups: int = 10,
    max_frames: int = 6,
    brief: bool = False,
) -> str:
    """The summary as text.

    Args:
        collector: What to summarise.
        color: Use ANSI colours.
        max_groups: Places to fix shown in full, largest first; the rest are counted.
        max_frames: Innermost frames of the first stack shown per site.
        brief: Only the counts (warn mode: each finding was shown as a warning).
    """
    paint = _Painter(color)
    groups = collector.groups()
    if not groups:
        return paint("loopwarden: no blocking calls or stalls on the event-loop thread.", "green")
    families = ", ".join(f"{family} {count}" for family, count in collector.by_family().items())
    noun = "finding" if collector.total == 1 else "findings"
    sites = "place to fix" if len(groups) == 1 else "places to fix"
    lines = [
        paint(
            f"loopwarden: {collector.total} {noun} at {len(groups)} {sites} "
            "on the event-loop thread",
            "red",
            "bold",
        )
        + f" ({families})",
        "",
    ]
    if brief:
        lines[-1] = "(each one was shown once, as a warning, when it happened)"
        return "\n".join(lines)
    for index, group in enumerate(groups[:max_groups], start=1):
        lines.extend(_group_block(index, group, paint, max_frames))
        lines.append("")
    rest = groups[max_groups:]
    if rest:
        lines.append(
            f"{more_places(len(rest), sum(g.count for g in rest))} (see the HTML or JSON report)"
        )
    if collector.dropped:
        lines.append(
            paint(
                f"({collector.dropped} repeated findings were counted but not kept in full)",
                "dim",
            )
        )
    return "\n".join(lines).rstrip()


def print_summary(
    collector: FindingCollector,
    stream: TextIO | None = None,
    *,
    max_groups: int = 10,
    max_frames: int = 6,
    brief: bool = False,
) -> None:
    """Print :func:`format_summary` to ``stream`` (default: stderr), coloured on a TTY."""
    out = sys.stderr if stream is None else stream
    text = format_summary(
        collector,
        color=use_color(out),
        max_groups=max_groups,
        max_frames=max_frames,
        brief=brief,
    )
    print(text, file=out, flush=True)
