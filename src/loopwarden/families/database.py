"""Family ``database``: sqlite3 connections, queries and fetches.

sqlite3 runs every statement synchronously on the calling thread: it reads
and writes the database file and waits up to ``timeout`` seconds for other
connections' locks. Iterating a cursor (``for row in cursor``) goes through
the C-level iterator slot, which cannot be patched; ``fetch*`` calls and the
``execute`` that produced the rows are reported.
"""

from __future__ import annotations

import os
from typing import Any

from loopwarden.rules import Rule

__all__ = ["RULES"]

_SQLITE = (
    "Run database work in a worker: `await asyncio.to_thread(...)` with a connection made "
    "for that thread (or `check_same_thread=False`), or use aiosqlite; in Qt code use a "
    "QThread/QThreadPool. sqlite3 waits on the disk and, for up to `timeout` seconds, on "
    "other connections' locks."
)


def _connect_blocks(database: Any = None, *_: object, **kwargs: object) -> bool:
    """Opening an in-memory database touches no file."""
    if isinstance(database, bytes):
        database = database.decode("utf-8", "replace")
    elif isinstance(database, os.PathLike):
        return True
    if not isinstance(database, str):
        return True
    if database == ":memory:":
        return False
    if kwargs.get("uri"):
        return not (database.startswith("file::memory:") or "mode=memory" in database)
    return True


def _rule(target: str, **options: Any) -> Rule:
    return Rule(target=target, family="database", suggestion=_SQLITE, **options)


_CONNECTION_METHODS = (
    "execute",
    "executemany",
    "executescript",
    "commit",
    "rollback",
    "backup",
    "blobopen",
)

_CURSOR_METHODS = (
    "execute",
    "executemany",
    "executescript",
    "fetchone",
    "fetchmany",
    "fetchall",
)

RULES: tuple[Rule, ...] = (
    _rule(
        "sqlite3:connect",
        blocks_when=_connect_blocks,
        condition="the database is a file (not ':memory:' or a mode=memory URI)",
    ),
    *(
        _rule(
            f"sqlite3:Connection.{method}",
            condition="always: runs on the calling thread, on the disk and its locks",
        )
        for method in _CONNECTION_METHODS
    ),
    _rule(
        "sqlite3:Connection.__exit__",
        condition="always: leaving `with connection:` commits or rolls back",
    ),
    *(
        _rule(
            f"sqlite3:Cursor.{method}",
            condition="always: runs on the calling thread, on the disk and its locks",
        )
        for method in _CURSOR_METHODS
    ),
)
