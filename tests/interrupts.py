"""Inject asynchronous exceptions (what a Ctrl-C does) at chosen points of loopwarden's code.

A Python-level signal handler runs between bytecodes of the main thread,
wherever it happens to be, and whatever it raises (``KeyboardInterrupt`` from
the default SIGINT handler) appears at that point. :func:`interrupt_at` does
the same deterministically: a ``sys.settrace`` tracer counts the *call* and
*line* events of frames whose code lives in the loopwarden package and raises
``KeyboardInterrupt`` from the ``n``-th one, so the exception appears at
that function entry or before that line, exactly like a signal delivered there.
*return* events are used too: an exception there is lost to the caller
together with the return value, as a signal checked right after a call would
do. CPython removes a tracer that raised, so each run injects one exception.

A few lines are skipped because no signal can ever be handled right before
them: a ``try:`` line (its only instruction is a ``NOP``; a tracer raising
there even skips the enclosing ``finally`` on CPython 3.11) and the first
statement of an ``except``, ``else`` or ``finally`` block (reached by a
jump or the exception machinery, with no call or backward jump before it,
which is where CPython checks for pending signals), and a ``with`` line when
it is reported again on the way *out* of the block (the ``__exit__`` call is
attributed to that line; a signal is handled before it, in the block, or
after it, never in between). A *return* is interrupted only when the
function's last real instruction was a call (where CPython checks), and never
for an ``__enter__``: CPython handles no signal between ``__enter__``
returning and the ``with`` block starting (bpo-29988). Raising there would test what tracing can do,
not what a Ctrl-C can.

:func:`injection_points` runs the code once without raising and returns one
event index for every distinct program point (function entry or line) it
passed, so a test can interrupt every point once without iterating over the
thousands of events a full patch install makes.
"""

from __future__ import annotations

import ast
import dis
import linecache
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import loopwarden

PACKAGE_DIR = str(Path(loopwarden.__file__).resolve().parent)
_PREFIXES = (PACKAGE_DIR, str(Path(loopwarden.__file__).parent))


#: A program point: (file, line, trace event).
Site = tuple[str, int, str]
#: Where to interrupt: the ``occurrence``-th time a run passes ``site``.
Point = tuple[Site, int]


@dataclass
class Injection:
    """Where one run injected its exception (or the sites a counting run passed)."""

    point: Point | None
    fired_at: str | None = None  # "file:line event in function"
    sites: list[Site] = field(default_factory=list)


_EVENTS = ("call", "line", "return")
_uninterruptible: dict[str, frozenset[int]] = {}


def _own(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_PREFIXES)


def _uninterruptible_lines(filename: str) -> frozenset[int]:
    lines = _uninterruptible.get(filename)
    if lines is None:
        found: set[int] = set()
        tree = ast.parse("".join(linecache.getlines(filename)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Try):
                found.add(node.lineno)
                for block in (node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    if block:
                        found.add(block[0].lineno)
        lines = _uninterruptible[filename] = frozenset(found)
    return lines


_WITH_OPS = frozenset({"BEFORE_WITH", "SETUP_WITH", "BEFORE_ASYNC_WITH", "SETUP_ASYNC_WITH"})
_with_starts: dict[CodeType, dict[int, int]] = {}


def _with_start(code: CodeType, line: int) -> int | None:
    """Offset of the first instruction entering a ``with`` on ``line``, if any."""
    starts = _with_starts.get(code)
    if starts is None:
        starts = {}
        current = None
        for instruction in dis.get_instructions(code):
            if sys.version_info >= (3, 13):
                current = instruction.line_number  # starts_line is a bool there
            elif instruction.starts_line is not None:
                current = instruction.starts_line
            if instruction.opname in _WITH_OPS and current is not None:
                starts.setdefault(int(current), instruction.offset)
        _with_starts[code] = starts
    return starts.get(line)


_TRIVIAL_OPS = frozenset(
    {"POP_TOP", "NOP", "CACHE", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "EXTENDED_ARG"}
)
_returns_after_call: dict[CodeType, dict[int, bool]] = {}


def _return_follows_call(code: CodeType, offset: int) -> bool:
    """Whether the instruction before this return (past no-ops) is a call.

    CPython handles pending signals right after calls (and at function
    entries and backward jumps), so an exception can appear at the end of a
    function only when its last real instruction was a call.
    """
    table = _returns_after_call.get(code)
    if table is None:
        table = {}
        last_real = ""
        for instruction in dis.get_instructions(code):
            if instruction.opname.startswith("RETURN"):
                table[instruction.offset] = last_real.startswith("CALL")
            if instruction.opname not in _TRIVIAL_OPS:
                last_real = instruction.opname
        _returns_after_call[code] = table
    return table.get(offset, False)


def _interruptible(frame: FrameType, event: str) -> bool:
    if event == "return":
        if frame.f_code.co_name == "__enter__":
            return False
        return _return_follows_call(frame.f_code, frame.f_lasti)
    if event != "line":
        return True
    if frame.f_lineno in _uninterruptible_lines(frame.f_code.co_filename):
        return False
    start = _with_start(frame.f_code, frame.f_lineno)
    return start is None or frame.f_lasti < start  # past it: leaving the block


_code_lines: dict[CodeType, frozenset[int]] = {}


def _holds(code: CodeType, filename: str, line: int) -> bool:
    """Whether frames of ``code`` can report an event at ``filename:line``."""
    if code.co_filename != filename:
        return False
    lines = _code_lines.get(code)
    if lines is None:
        found = {code.co_firstlineno}
        found.update(number for _, _, number in code.co_lines() if number is not None)
        lines = _code_lines[code] = frozenset(found)
    return line in lines


@contextmanager
def interrupt_at(point: Point | None) -> Iterator[Injection]:
    """Raise ``KeyboardInterrupt`` at ``point`` of loopwarden's code.

    With ``point=None`` nothing is raised and every site passed is recorded
    in order (a counting run). Points name a site rather than an event
    index, so caches that loopwarden fills on first use (frame
    classification, source lines) do not shift them from run to run.
    """
    injection = Injection(point)
    seen: dict[Site, int] = {}
    target = (point[0][0], point[0][1]) if point is not None else ("", 0)

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event not in _EVENTS or not _own(frame):
            return None if event == "call" else tracer
        if event == "call" and point is not None and not _holds(frame.f_code, *target):
            # Only frames of the code that holds the point's line can reach it:
            # the others run untraced, which keeps a run that interrupts the
            # end of a whole guard() cycle from tracing every line before it.
            return None
        if not _interruptible(frame, event):
            return tracer
        site = (frame.f_code.co_filename, frame.f_lineno, event)
        if point is None:
            injection.sites.append(site)
            return tracer
        count = seen[site] = seen.get(site, 0) + 1
        if (site, count) == point:
            injection.fired_at = f"{Path(site[0]).name}:{site[1]} {event} in {frame.f_code.co_name}"
            raise KeyboardInterrupt(f"injected at {injection.fired_at}")
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield injection
    finally:
        sys.settrace(previous)


def injection_points(run: Callable[[], object], *, rounds: int = 2) -> list[Point]:
    """Every program point ``run`` passes in loopwarden's code, once and once more.

    Each site is interrupted the first time it is passed and, if a run passes
    it again (a loop) and ``rounds`` is 2, the second time. ``run`` is called once before
    counting, so caches filled on first use leave the counted run alone.
    """
    run()
    with interrupt_at(None) as counting:
        run()
    seen: dict[Site, int] = {}
    points: list[Point] = []
    for site in counting.sites:
        count = seen[site] = seen.get(site, 0) + 1
        if count <= rounds:
            points.append((site, count))
    return points


def interrupted(point: Point, run: Callable[[], object]) -> str | None:
    """Run ``run`` interrupted at ``point``; a failure message, or None if all went as expected.

    The ``KeyboardInterrupt`` must reach the caller: loopwarden never
    swallows a Ctrl-C. A point this run did not reach is not a failure (a
    cache filled since the counted run, or one loop round fewer).
    """
    with interrupt_at(point) as injection:
        try:
            run()
        except KeyboardInterrupt:
            return None
    if injection.fired_at is not None:
        return f"the interrupt at {injection.fired_at} was swallowed"
    return None  # this run took another path (a cache filled meanwhile): nothing to test
