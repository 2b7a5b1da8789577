"""Family ``sleep``: sleeping on the loop thread."""

from __future__ import annotations

from loopwarden.rules import Rule

__all__ = ["RULES"]


def _sleeps(seconds: float = 0, *_: object) -> bool:
    # time.sleep(0) only yields the GIL to other threads; it does not stall the loop.
    return bool(seconds > 0)


RULES: tuple[Rule, ...] = (
    Rule(
        target="time:sleep",
        family="sleep",
        blocks_when=_sleeps,
        condition="seconds > 0",
        suggestion="Use `await asyncio.sleep(seconds)` in a coroutine, or a QTimer "
        "(QTimer.singleShot) in Qt code, so the loop keeps running.",
    ),
)
