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
which is where CPython checks for pending signals). Raising there would test
what tracing can do, not what a Ctrl-C can.

:func:`injection_points` runs the code once without raising and returns one
event index for every distinct program point (function entry or line) it
passed, so a test can interrupt every point once without iterating over the
thousands of events a full patch install makes.
"""

from __future__ import annotations

import ast
import linecache
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
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


def _interruptible(frame: FrameType, event: str) -> bool:
    if event != "line":
        return True
    return frame.f_lineno not in _uninterruptible_lines(frame.f_code.co_filename)


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

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event not in _EVENTS or not _own(frame):
            return None if event == "call" else tracer
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


def injection_points(run: Callable[[], object]) -> list[Point]:
    """Every program point ``run`` passes in loopwarden's code, once and once more.

    Each site is interrupted the first time it is passed and, if a run passes
    it again (a loop), the second time. ``run`` is called once before
    counting, so caches filled on first use leave the counted run alone.
    """
    run()
    with interrupt_at(None) as counting:
        run()
    seen: dict[Site, int] = {}
    points: list[Point] = []
    for site in counting.sites:
        count = seen[site] = seen.get(site, 0) + 1
        if count <= 2:
            points.append((site, count))
    return points


def interrupted(point: Point, run: Callable[[], object]) -> str | None:
    """Run ``run`` interrupted at ``point``; a failure message, or None if all went as expected.

    The ``KeyboardInterrupt`` must reach the caller: loopwarden never
    swallows a Ctrl-C. A second occurrence that this run did not reach is
    not a failure (the counted run went round a loop once more).
    """
    with interrupt_at(point) as injection:
        try:
            run()
        except KeyboardInterrupt:
            return None
    if injection.fired_at is not None:
        return f"the interrupt at {injection.fired_at} was swallowed"
    if point[1] == 1:
        return f"{point[0]} was not reached"
    return None
