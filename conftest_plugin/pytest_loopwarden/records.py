"""Findings with their test context: which test and phase, and whose code blocked."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Sequence
from typing import Any

from loopwarden import Finding, StackFrame
from loopwarden.frames import is_stdlib_file

__all__ = [
    "ORIGINS",
    "Record",
    "blocked_long_enough",
    "blocking_frame",
    "in_scope",
    "kept_because",
    "origin_of",
]

#: Whose code made the blocking call, as shown in failures and reports: the
#: tests, the project's own code (the ``--block-detect-scope`` packages when
#: set), or a library.
ORIGINS = ("test code", "your code", "third-party code")

_SITE_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def in_scope(module: str, scope: Sequence[str]) -> bool:
    """True if ``module`` is one of the ``scope`` packages or inside one."""
    return any(module == pkg or module.startswith(pkg + ".") for pkg in scope)


def blocked_long_enough(finding: Finding, min_ms: float) -> bool:
    """Does ``finding`` count against ``--block-detect-min-ms``?

    A call of unknown duration counts: it never ran (raise mode, a certain
    deadlock), so nothing shows it was short.
    """
    if min_ms <= 0:
        return True
    duration = finding.duration_ms
    return duration is None or duration >= min_ms


def blocking_frame(finding: Finding) -> StackFrame | None:
    """The innermost frame outside the standard library: the code that blocked."""
    for frame in reversed(finding.stack):
        if not is_stdlib_file(frame.filename):
            return frame
    return finding.stack[-1] if finding.stack else None


def _is_test_file(filename: str, test_files: Collection[str]) -> bool:
    if filename in test_files:
        return True
    base = os.path.basename(filename)
    return base == "conftest.py" or base.startswith("test_") or base.endswith("_test.py")


def origin_of(finding: Finding, test_files: Collection[str], scope: Sequence[str]) -> str:
    """Classify the blocking frame: test code, your code or third-party code.

    With a scope, your code is the scope's packages; without one, code
    outside site-packages (the project).
    """
    frame = blocking_frame(finding)
    if frame is None:
        return ORIGINS[2]
    if _is_test_file(frame.filename, test_files):
        return ORIGINS[0]
    if scope:
        return ORIGINS[1] if in_scope(frame.module, scope) else ORIGINS[2]
    path = os.path.normcase(frame.filename)
    return ORIGINS[2] if any(m in path for m in _SITE_MARKERS) else ORIGINS[1]


def kept_because(finding: Finding, scope: Sequence[str]) -> str:
    """Why a finding passed the ``scope`` filter, e.g. ``"kept: stack passes through pkg.mod:f"``.

    Empty when there is no scope, or when the primitive itself is a function
    of the scope (a ``mark_blocking`` rule).
    """
    if not scope or in_scope(finding.primitive, scope):
        return ""
    for frame in reversed(finding.stack):
        if in_scope(frame.module, scope):
            return f"kept: stack passes through {frame.module}:{frame.function}"
    return ""


@dataclasses.dataclass(frozen=True)
class Record:
    """A finding seen during one phase of one test."""

    finding: Finding
    nodeid: str
    phase: str
    origin: str
    worker: str | None = None

    @property
    def site(self) -> tuple[str, str]:
        """The grouping key: primitive and the user's calling line."""
        return (self.finding.primitive, self.finding.user_caller or self.finding.caller)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the finding's own keys plus nodeid, phase, origin and worker.

        ``loopwarden.Finding.from_dict`` reads it back (it ignores the extra keys).
        """
        data = self.finding.to_dict()
        data.update(nodeid=self.nodeid, phase=self.phase, origin=self.origin, worker=self.worker)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record from :meth:`to_dict` output (e.g. sent by an xdist worker)."""
        return cls(
            finding=Finding.from_dict(data),
            nodeid=str(data.get("nodeid", "")),
            phase=str(data.get("phase", "")),
            origin=str(data.get("origin", "")),
            worker=data.get("worker"),
        )
