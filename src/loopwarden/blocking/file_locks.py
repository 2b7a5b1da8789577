"""Family ``filesystem``: waiting for a file lock (``fcntl.flock``, ``fcntl.lockf``).

Without ``LOCK_NB`` both wait for as long as another process (or another open
file description) holds a conflicting lock. Like the thread locks of the
``sync`` family, the rule first tries the same lock with ``LOCK_NB``: a lock
nobody holds is taken right there, and only a contended one is a finding.
Unlocking (``LOCK_UN``) never waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopwarden.rules import NOT_BLOCKED, Rule

__all__ = ["RULES"]

try:
    import fcntl
except ImportError:  # Windows: no rules apply
    fcntl = None  # type: ignore[assignment]

_LOCK_NB = getattr(fcntl, "LOCK_NB", 4)
_LOCK_UN = getattr(fcntl, "LOCK_UN", 8)

_FILE_LOCK = (
    "Another process holds this file lock, so the loop stops until it lets go. Take it with "
    "`LOCK_NB` and retry after `await asyncio.sleep(...)`, wait in a worker "
    "(`await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)`), or use filelock's "
    "AsyncFileLock."
)


def _waits(operation: object) -> bool:
    return isinstance(operation, int) and not operation & (_LOCK_NB | _LOCK_UN)


def _flock_blocks(fd: object, operation: object = 0, *_: object) -> bool:
    return _waits(operation)


def _try_nonblocking(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Take the lock with LOCK_NB: free, it is held now (the call's result); else NOT_BLOCKED."""
    try:
        return original(args[0], args[1] | _LOCK_NB, *args[2:])
    except OSError:  # EWOULDBLOCK / EAGAIN / EACCES: contended
        return NOT_BLOCKED


def _rule(target: str, **options: Any) -> Rule:
    return Rule(target=target, family="filesystem", suggestion=_FILE_LOCK, **options)


RULES: tuple[Rule, ...] = tuple(
    _rule(
        f"fcntl:{function}",
        blocks_when=_flock_blocks,
        attempt=_try_nonblocking,
        condition="the operation lacks LOCK_NB (and is not LOCK_UN) and another holder has a "
        "conflicting lock (tried with LOCK_NB first)",
    )
    for function in ("flock", "lockf")
)
