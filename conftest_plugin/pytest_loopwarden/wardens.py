"""The per-test warden: a :class:`loopwarden.Warden` with the test's filters."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from loopwarden import Finding, Warden, expect_blocking
from pytest_loopwarden.records import in_scope

__all__ = ["TestWarden"]


class TestWarden(Warden):
    """The warden of one test, returned by the ``loopwarden`` fixture.

    Besides the :class:`loopwarden.Warden` API (``findings``, ``allow()``,
    ``add_rule()``) it declines findings outside ``--block-detect-scope`` and
    those allowed by ``@pytest.mark.allow_blocking``, and offers
    :meth:`expect_blocking` (so a test whose fixture argument shadows the
    ``loopwarden`` module can still write ``loopwarden.expect_blocking(...)``).
    """

    __test__ = False  # a class named Test*: not a test class

    def __init__(
        self,
        mode: Any = "record",
        *,
        scope: Sequence[str] = (),
        allowed: frozenset[str] = frozenset(),
        allow_all: bool = False,
        **options: Any,
    ) -> None:
        # Every finding of a test, not the first max_findings: each phase is
        # judged on the findings it added, and one test's warden is short-lived.
        options.setdefault("max_findings", sys.maxsize)
        super().__init__(mode, **options)
        self.scope = tuple(scope)
        self.allowed = allowed
        self.allow_all = allow_all

    def wants(self, finding: Finding) -> bool:
        """Keep in-scope findings that no marker allows."""
        try:
            if self.allow_all:
                return False
            if self.allowed and (
                finding.primitive in self.allowed or finding.family in self.allowed
            ):
                return False
            scope = self.scope
            if not scope or in_scope(finding.primitive, scope):
                return True  # a rule on a function of the scope itself (mark_blocking)
            return any(in_scope(frame.module, scope) for frame in finding.stack)
        except Exception:  # noqa: BLE001 - runs inside a patched call: never break it
            return True

    def expect_blocking(self, *primitives: str) -> expect_blocking:
        """Same as :func:`loopwarden.expect_blocking`."""
        return expect_blocking(*primitives)
