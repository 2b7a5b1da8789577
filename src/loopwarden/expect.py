"""Asserting that code blocks: ``with loopwarden.expect_blocking("time.sleep"):``.

Useful in tests of code that is *meant* to be caught (a rule, an adapter, a
known-bad legacy path). Works with and without the pytest plugin: the block
runs under its own record-mode warden, so nothing raises or warns inside it,
and the findings it expected are taken back from the outer wardens (the
plugin's per-test warden among them), so an expected blocking call does not
fail the test. Unexpected findings inside the block are left alone.
"""

from __future__ import annotations

from types import TracebackType

from loopwarden import engine
from loopwarden.findings import Finding
from loopwarden.warden import Warden

__all__ = ["expect_blocking"]


class expect_blocking:  # noqa: N801 - reads like a function at the call site
    """Assert that the block makes the given blocking calls on a loop thread.

    Args:
        *primitives: Primitives (``"time.sleep"``, ``"builtins.open"``) or
            families (``"filesystem"``) that must each be detected at least
            once. None given: any blocking call will do.

    The context manager's value is the block's :class:`~loopwarden.Warden`;
    its ``findings`` hold everything detected inside the block.

    Raises:
        AssertionError: on leaving the block, if an expected primitive was not
            detected. Not raised when the block itself raised.

    Example:
        >>> import asyncio, time, loopwarden
        >>> async def main():
        ...     with loopwarden.expect_blocking("time.sleep") as warden:
        ...         time.sleep(0.001)
        ...     return [f.primitive for f in warden.findings]
        >>> asyncio.run(main())
        ['time.sleep']
    """

    def __init__(self, *primitives: str) -> None:
        self.primitives = primitives
        self._warden: Warden | None = None

    def __enter__(self) -> Warden:
        # Innermost and in record mode: an outer raise/warn warden does not act
        # on what happens here.
        self._warden = Warden("record")
        self._warden._activate()
        return self._warden

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        warden = self._warden
        assert warden is not None, "expect_blocking exited without being entered"
        warden._deactivate()
        expected = [f for f in warden.findings if self._matches(f)]
        _take_back(expected)
        if exc_type is not None:
            return
        missing = [p for p in self.primitives if not any(_is(f, p) for f in expected)]
        if missing or not expected:
            seen = ", ".join(sorted({f.primitive for f in warden.findings})) or "none"
            wanted = ", ".join(missing) if missing else "a blocking call"
            raise AssertionError(
                f"expected {wanted} on an event-loop thread inside expect_blocking(), "
                f"but it was not detected (detected: {seen}). The code must run on a "
                "thread where an event loop is running, e.g. inside a coroutine."
            )

    def _matches(self, finding: Finding) -> bool:
        return not self.primitives or any(_is(finding, p) for p in self.primitives)


def _is(finding: Finding, name: str) -> bool:
    return finding.primitive == name or finding.family == name


def _take_back(expected: list[Finding]) -> None:
    """Remove expected findings from the wardens still active (by identity)."""
    if not expected:
        return
    for warden in list(engine.active_wardens):
        warden._forget(expected)
