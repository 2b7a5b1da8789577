"""Findings with their test context: which test and phase, and whose code blocked."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Sequence
from typing import Any

from loopwarden import Finding, StackFrame
from loopwarden.frames import is_stdlib_file

__all__ = ["ORIGINS", "Record", "blocking_frame", "in_scope", "origin_of"]

#: Whose code made the blocking call, as shown in failures and reports.
ORIGINS = ("test code", "in-scope code", "third-party code")

_SITE_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def in_scope(module: str, scope: Sequence[str]) -> bool:
    """True if ``module`` is one of the ``scope`` packages or inside one."""
    return any(module == pkg or module.startswith(pkg + ".") for pkg in scope)


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
    """Classify the blocking frame: test code, in-scope code or third-party code.

    Without a scope, code outside site-packages counts as in scope (the project).
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
