"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

Layout: a summary header (counts per family, run facts), a timeline of
blocking calls and stalls (one lane per call site), then one card per call
site with its count, location, suggestion and expandable stacks.
"""

from __future__ import annotations

import datetime
import html
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from loopwarden._version import __version__
from loopwarden.findings import Finding, StackFrame, format_duration
from loopwarden.report.files import write_atomic
from loopwarden.report.grouping import FindingCollector, FindingGroup, TimelinePoint, site_key
from loopwarden.report.terminal import relevant_frames, short_path

__all__ = ["render_html", "write_html"]

#: Colour per family (colour-blind-friendly where it matters: stall is red).
FAMILY_COLORS = {
    "sleep": "#7b61ff",
    "filesystem": "#1f77b4",
    "network": "#17becf",
    "database": "#8c564b",
    "sync": "#e377c2",
    "process": "#bcbd22",
    "console": "#7f7f7f",
    "qt": "#2ca02c",
    "reentrancy": "#ff7f0e",
    "stall": "#d62728",
    "thread": "#9467bd",
    "custom": "#555555",
}
_MAX_LANES = 16
#: Tests named on a card; the rest are counted.
_MAX_TESTS = 8

_CSS = """
:root { color-scheme: light; --fg: #1d2330; --muted: #5d6576; --line: #dde1e8;
  --bg: #f6f7f9; --card: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
.sub { color: var(--muted); margin: 0 0 18px; font-size: 13px; word-break: break-all; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 14px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 16px; min-width: 140px; }
.card .n { font-size: 26px; font-weight: 700; }
.card .l { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.chips { display: flex; gap: 8px; flex-wrap: wrap; }
.chip { display: inline-block; color: #fff; border-radius: 999px; padding: 1px 10px;
  font-size: 12px; font-weight: 600; }
.ok { background: #e8f6ec; border: 1px solid #b6e2c2; border-radius: 8px; padding: 14px 18px; }
.timeline { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px; }
.timeline svg { width: 100%; height: auto; display: block; }
.group { background: var(--card); border: 1px solid var(--line); border-left: 6px solid;
  border-radius: 8px; padding: 12px 16px; margin-bottom: 12px; }
.ghead { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.gnum { color: var(--muted); font-weight: 700; }
.prim { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-weight: 700; }
.count { margin-left: auto; font-weight: 700; white-space: nowrap; }
.where { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
  margin: 6px 0 2px; word-break: break-all; }
.src { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
  background: #f1f3f6; border-radius: 4px; padding: 2px 8px; display: inline-block; }
.meta { color: var(--muted); font-size: 13px; }
.fix { background: #eef8f0; border-left: 3px solid #2ca02c; padding: 6px 10px; margin: 8px 0;
  border-radius: 0 4px 4px 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
  background: #dff0e3; border-radius: 3px; padding: 0 3px; }
details { margin-top: 6px; }
details.full { margin-left: 12px; }
summary { cursor: pointer; color: #2457c5; font-size: 14px; }
pre { background: #1d2330; color: #e8ebf1; padding: 10px 12px; border-radius: 6px;
  overflow-x: auto; font-size: 12.5px; line-height: 1.5; margin: 6px 0 0; }
pre .d { color: #9aa4b6; }
footer { color: var(--muted); font-size: 12px; margin-top: 30px; }
"""


#: Bidirectional control characters: raw, they make a name display reversed
#: ("Trojan Source"), so the report shows them as visible ``[U+202E]`` marks.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Lone surrogates: bytes of a non-UTF-8 file name decoded with surrogateescape.
_SURROGATES = re.compile("[\ud800-\udfff]")


def _visible_control(match: re.Match[str]) -> str:
    return f"[U+{ord(match.group()):04X}]"


def _escaped_byte(match: re.Match[str]) -> str:
    code = ord(match.group())
    # surrogateescape maps the undecodable byte 0xNN to U+DCNN (0x80 <= NN <= 0xff).
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _e(text: object) -> str:
    """Escape for HTML; bidi controls and undecodable bytes become visible text."""
    escaped = html.escape(str(text), quote=True)
    escaped = _BIDI_CONTROLS.sub(_visible_control, escaped)
    return _SURROGATES.sub(_escaped_byte, escaped)


def _fmt_time(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _prose(text: str) -> str:
    """Escape ``text`` and show its `backticked` parts as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _color(family: str) -> str:
    return FAMILY_COLORS.get(family, FAMILY_COLORS["custom"])


def _frames_pre(frames: Sequence[StackFrame]) -> str:
    lines: list[str] = []
    for frame in frames:
        lines.append(_e(short_path(str(frame))))
        source = frame.source_line()
        if source:
            lines.append(f'<span class="d">    {_e(source)}</span>')
    return "<pre>" + "\n".join(lines) + "</pre>"


def _stack_html(finding: Finding) -> str:
    kept, hidden = relevant_frames(finding.stack)
    if not hidden:
        return _frames_pre(finding.stack)
    return (
        _frames_pre(kept)
        + f'<details class="full"><summary>Full stack with the {hidden} event-loop and '
        f"library frames</summary>{_frames_pre(finding.stack)}</details>"
    )


def _watchdog_ran(collector: FindingCollector, stall_count: int) -> bool:
    """Whether stall figures mean anything: the watchdog was on, or stalls were seen."""
    threshold = collector.meta.get("stall_ms")
    on = isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and threshold > 0
    return on or stall_count > 0


def _summary_html(collector: FindingCollector, groups: list[FindingGroup]) -> str:
    stalls = [g for g in groups if g.family == "stall"]
    stall_count = sum(g.count for g in stalls)
    longest = max((g.stall_ms_max for g in stalls), default=0.0)
    duration = max(0.0, collector.end_time - collector.started_at)
    cards: list[tuple[object, str]] = [(collector.total, "findings"), (len(groups), "call sites")]
    # Only what ran: "0 stalls" would claim the loop never stalled when nobody watched.
    if _watchdog_ran(collector, stall_count):
        cards += [(stall_count, "stalls"), (f"{longest:.0f} ms", "longest stall")]
    cards.append((f"{duration:.1f} s", "run time"))
    card_html = "".join(
        f'<div class="card"><div class="n">{_e(n)}</div><div class="l">{_e(label)}</div></div>'
        for n, label in cards
    )
    chips = "".join(
        f'<span class="chip" style="background:{_color(family)}">{_e(family)} {count}</span>'
        for family, count in collector.by_family().items()
    )
    return f'<div class="cards">{card_html}</div><div class="chips">{chips}</div>'


def _nice_step(span: float, target_ticks: int = 6) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``target_ticks``."""
    raw = span / target_ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return 10.0 * power  # pragma: no cover - the loop always returns


#: Longest lane label, in characters (longer names keep their end: "…Connection.execute").
_LABEL_CHARS = 40
#: Width of one label character in the SVG's units, generous for proportional fonts at 12 px.
_CHAR_WIDTH = 7.4


def _lane_label(number: int, group: FindingGroup) -> str:
    name = "stall" if group.family == "stall" else group.primitive
    label = f"#{number} {name}"
    if len(label) > _LABEL_CHARS:
        label = "…" + label[-(_LABEL_CHARS - 1) :]
    return label


def _label_width(labels: Sequence[str]) -> float:
    """Room for the longest label left of the lanes (so none is cut at the left edge)."""
    longest = max((len(label) for label in labels), default=8)
    return min(16 + longest * _CHAR_WIDTH, 16 + _LABEL_CHARS * _CHAR_WIDTH)


def _timeline_svg(collector: FindingCollector, groups: list[FindingGroup]) -> str:
    """Inline SVG: one lane per call site (most frequent first), time on the x axis."""
    calls, stalls = collector.timeline()
    start = collector.started_at
    points = calls + stalls
    if points:
        start = min(start, min(p.timestamp for p in points))
    end = max(collector.end_time, start + 0.001)
    span = end - start
    creation_order = collector.groups_in_order()
    # Timeline points index groups by creation order; lanes follow the card numbering.
    number_of = {id(g): i for i, g in enumerate(groups, start=1)}
    lane_of_index = {
        index: min(number_of[id(g)], _MAX_LANES + 1) for index, g in enumerate(creation_order)
    }
    lanes = min(len(groups), _MAX_LANES + 1) or 1
    labels = [
        _lane_label(lane, groups[lane - 1]) if lane <= _MAX_LANES else "more sites"
        for lane in range(1, lanes + 1)
    ]
    left, right, top, lane_h = round(_label_width(labels)), 990, 8, 22
    width = right - left
    height = top + lanes * lane_h + 30

    def x(timestamp: float) -> float:
        return left + (timestamp - start) / span * width

    parts = [
        f'<svg viewBox="0 0 1000 {height}" '
        'role="img" aria-label="Timeline of findings and stalls" '
        'font-family="system-ui, sans-serif" font-size="12">'
    ]
    for lane in range(1, lanes + 1):
        y = top + (lane - 1) * lane_h
        if lane % 2:
            parts.append(
                f'<rect x="{left}" y="{y}" width="{width}" height="{lane_h}" fill="#f4f6f9"/>'
            )
        label = labels[lane - 1]
        parts.append(
            f'<text class="lane" x="{left - 8}" y="{y + lane_h / 2 + 4}" text-anchor="end" '
            'fill="#3d4556">'
            f"{_e(label)}</text>"
        )

    def lane_y(point: TimelinePoint) -> float:
        return top + (lane_of_index.get(point.group, lanes) - 1) * lane_h

    def group_of(point: TimelinePoint) -> FindingGroup | None:
        return creation_order[point.group] if 0 <= point.group < len(creation_order) else None

    for point in stalls:
        group = group_of(point)
        x0 = x(point.timestamp)
        duration = (point.duration_ms or 0.0) / 1000.0
        w = max(2.0, min(float(right), x(point.timestamp + duration)) - x0)
        where = short_path(group.user_caller) if group else ""
        parts.append(
            f'<rect x="{x0:.1f}" y="{lane_y(point) + 3}" width="{w:.1f}" height="{lane_h - 6}" '
            f'rx="2" fill="{_color("stall")}" fill-opacity="0.85"><title>'
            f"stall of {point.duration_ms or 0:.0f} ms at +{point.timestamp - start:.2f} s in "
            f"{_e(where)}</title></rect>"
        )
    for point in calls:
        group = group_of(point)
        family = group.family if group else "custom"
        label = f"{group.what} at {short_path(group.user_caller)}" if group else ""
        # A timed call is drawn with its real width (at least 3 px, to stay visible).
        x0 = x(point.timestamp) - 1.5
        w = 3.0
        blocked = ""
        if point.duration_ms is not None:
            end = min(float(right), x(point.timestamp + point.duration_ms / 1000.0))
            w = max(3.0, end - x0)
            blocked = f", blocked {format_duration(point.duration_ms)}"
        parts.append(
            f'<rect x="{x0:.1f}" y="{lane_y(point) + 3}" width="{w:.1f}" '
            f'height="{lane_h - 6}" fill="{_color(family)}"><title>'
            f"+{point.timestamp - start:.2f} s: {_e(label)}{blocked}</title></rect>"
        )
    axis_y = top + lanes * lane_h + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="#9aa4b6"/>')
    step = _nice_step(span)
    magnitude = math.floor(math.log10(step))
    # Enough decimals for the step: 0.25 s needs two, 2.5 s one, 20 s none.
    decimals = max(0, -magnitude + (1 if round(step / 10.0**magnitude, 6) == 2.5 else 0))
    for index in range(int(span / step + 1e-9) + 1):
        tick = index * step
        tx = left + tick / span * width
        # The last label would overflow the right edge: right-align it there.
        anchor = "end" if tx > right - 25 else "middle"
        parts.append(
            f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 4}" stroke="#9aa4b6"/>'
            f'<text x="{tx:.1f}" y="{axis_y + 17}" text-anchor="{anchor}" fill="#5d6576">'
            f"{tick:.{decimals}f} s</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _in_test(finding: Finding) -> str:
    test = _test_of(finding)
    return f", in {_e(test)}" if test else ""


def _test_of(finding: Finding) -> str:
    """``"tests/test_x.py::test_y (call)"`` for a finding from the pytest plugin, else ""."""
    nodeid = finding.details.get("nodeid")
    if not isinstance(nodeid, str) or not nodeid:
        return ""
    phase = finding.details.get("phase")
    return f"{nodeid} ({phase})" if isinstance(phase, str) and phase else nodeid


def _tests_html(tests: Sequence[str]) -> str:
    if not tests:
        return ""
    shown = ", ".join(_e(test) for test in tests[:_MAX_TESTS])
    more = f" and {len(tests) - _MAX_TESTS} more" if len(tests) > _MAX_TESTS else ""
    noun = "test" if len(tests) == 1 else "tests"
    return f'<div class="meta tests">In {noun} (phase): {shown}{more}</div>'


def _group_html(number: int, group: FindingGroup, tests: Sequence[str] = ()) -> str:
    first = group.first
    color = _color(group.family)
    if group.family == "stall":
        what = "event loop stalled"
        times = "once" if group.count == 1 else f"{group.count} times"
        count = (
            f"{times} · longest {group.stall_ms_max:.0f} ms · total {group.stall_ms_total:.0f} ms"
        )
    else:
        what = group.what  # everything the line made block, with counts
        count = "once" if group.count == 1 else f"{group.count} times"
        if group.timed:
            count += f" · blocked {format_duration(group.blocked_ms_total)} in total"
    source = first.stack[-1].source_line() if first.stack else ""
    user_source = next(
        (f.source_line() for f in reversed(first.stack) if str(f) == group.user_caller), source
    )
    parts = [
        f'<section class="group" id="g{number}" style="border-left-color:{color}">',
        '<div class="ghead">',
        f'<span class="gnum">#{number}</span>',
        f'<span class="chip" style="background:{color}">{_e(group.family)}</span>',
        f'<span class="prim">{_e(what)}</span>',
        f'<span class="count">{_e(count)}</span>',
        "</div>",
        f'<div class="where">{_e(short_path(group.user_caller))}</div>',
    ]
    if user_source:
        parts.append(f'<div class="src">{_e(user_source)}</div>')
    parts.append(
        f'<div class="meta">thread {_e(first.thread_name)} · {_e(first.loop)} · '
        f"first at {_fmt_time(group.first_timestamp)}"
        + (f", last at {_fmt_time(group.last_timestamp)}" if group.count > 1 else "")
        + "</div>"
    )
    parts.append(_tests_html(tests))
    parts.append(f'<div class="fix"><strong>Fix:</strong> {_prose(group.suggestion)}</div>')
    if first.stack:
        # The most frequent site's stack starts open: one click less for the usual fix.
        state = " open" if number == 1 else ""
        parts.append(
            f"<details{state}><summary>Stack of the first call{_in_test(first)}</summary>"
            f"{_stack_html(first)}</details>"
        )
    for index, sample in enumerate(group.samples[1:], start=2):
        parts.append(
            f"<details><summary>Other stack {index} of {len(group.samples)}"
            f"{_in_test(sample)}</summary>{_stack_html(sample)}</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _tests_by_site(collector: FindingCollector) -> dict[tuple[str, str], list[str]]:
    """Place to fix -> the tests (and phases) its kept findings came from, in order."""
    tests: dict[tuple[str, str], dict[str, None]] = {}
    for finding in collector.findings:
        test = _test_of(finding)
        if test:
            tests.setdefault(site_key(finding), {})[test] = None
    return {key: list(names) for key, names in tests.items()}


def render_html(collector: FindingCollector, *, title: str = "loopwarden report") -> str:
    """The whole report as one HTML document."""
    groups = collector.groups()
    meta = collector.meta
    facts = [f"{_fmt_time(collector.started_at)}"]
    for key in ("command", "mode", "stall_ms"):
        if meta.get(key) not in (None, ""):
            facts.append(f"{key}: {meta[key]}")
    facts.append(f"Python {sys.version.split()[0]}")
    facts.append(f"loopwarden {__version__}")
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{" · ".join(_e(f) for f in facts)}</p>',
    ]
    if not groups:
        body.append(
            '<div class="ok">No blocking calls or stalls were seen on the event-loop thread.</div>'
        )
    else:
        body.append(_summary_html(collector, groups))
        body.append("<h2>Timeline</h2>")
        body.append(
            '<p class="meta">One lane per call site (numbers match the cards below); '
            "bars are blocking calls, red blocks are stalls. Hover for details.</p>"
        )
        body.append(f'<div class="timeline">{_timeline_svg(collector, groups)}</div>')
        body.append(f"<h2>Call sites ({len(groups)})</h2>")
        tests = _tests_by_site(collector)
        body.extend(_group_html(n, g, tests.get(g.key, ())) for n, g in enumerate(groups, start=1))
        if collector.dropped:
            body.append(
                f'<p class="meta">{collector.dropped} repeated findings were counted but not '
                "kept in full (memory bound).</p>"
            )
    body.append(
        "<footer>Generated by loopwarden. Each card is one line of your code and what "
        "blocked there; fix the most frequent first.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_html(
    collector: FindingCollector, path: str | os.PathLike[str], *, title: str = "loopwarden report"
) -> Path:
    """Write :func:`render_html` to ``path`` atomically (parent directories are created)."""
    return write_atomic(path, render_html(collector, title=title))
