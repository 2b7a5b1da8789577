"""Family ``database``: sqlite3 connections, queries and fetches.

sqlite3 runs every statement synchronously on the calling thread: it reads
and writes the database file and waits up to ``timeout`` seconds for other
connections' locks. Iterating a cursor (``for row in cursor``) goes through
the C-level iterator slot, which cannot be patched; ``fetch*`` calls and the
``execute`` that produced the rows are reported.

An in-memory database (``":memory:"``, ``"file::memory:?cache=shared"``, any
``mode=memory`` URI) touches no disk, so statements on it are silent. Which
files a connection uses is not an attribute in Python: on the guarded thread
only, the rule asks the connection itself (``pragma_database_list``, a
read-only query of a few microseconds, run on a fresh cursor so the caller's
cursors and row factory are untouched; a trace callback set with
``set_trace_callback`` sees it). A connection with a file database
attached is reported, and so are ``ATTACH`` and ``VACUUM`` statements, which
open or write files even from an in-memory connection.
"""

from __future__ import annotations

import os
import re
import sqlite3
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


def _unpatched(value: Any) -> Any:
    # This module may be imported while loopwarden's patches are in.
    return value.__wrapped__ if hasattr(value, "__loopwarden_rule__") else value


_cursor_execute = _unpatched(sqlite3.Cursor.__dict__["execute"])
_cursor_fetchone = _unpatched(sqlite3.Cursor.__dict__["fetchone"])
_FILES_ATTACHED = "SELECT count(*) FROM pragma_database_list WHERE file <> ''"
#: Statements that open or write a file even on an in-memory connection.
_TOUCHES_FILES = re.compile(r"\b(?:attach|vacuum)\b", re.IGNORECASE)


def _uses_files(conn: Any) -> bool:
    """True unless every database of ``conn`` is in memory."""
    if not isinstance(conn, sqlite3.Connection):
        return True
    try:
        cursor = sqlite3.Cursor(conn)
        cursor.row_factory = None  # the caller's row factory must not see our query
        try:
            _cursor_execute(cursor, _FILES_ATTACHED)
            row = _cursor_fetchone(cursor)
        finally:
            cursor.close()
    except sqlite3.ProgrammingError:
        return False  # closed, or used from another thread: the call fails at once
    except sqlite3.Error:
        return True  # cannot tell (an authorizer refused the pragma): assume a file
    return not isinstance(row, tuple) or row[0] != 0


def _sql_touches_files(sql: object) -> bool:
    return isinstance(sql, str) and _TOUCHES_FILES.search(sql) is not None


def _connection_blocks(conn: Any, *_: object, **__: object) -> bool:
    return _uses_files(conn)


def _connection_sql_blocks(conn: Any, sql: object = None, *_: object, **__: object) -> bool:
    return _sql_touches_files(sql) or _uses_files(conn)


def _backup_blocks(conn: Any, target: Any = None, *_: object, **__: object) -> bool:
    return _uses_files(conn) or _uses_files(target)


def _cursor_blocks(cursor: Any, *_: object, **__: object) -> bool:
    return _uses_files(getattr(cursor, "connection", None))


def _cursor_sql_blocks(cursor: Any, sql: object = None, *_: object, **__: object) -> bool:
    return _sql_touches_files(sql) or _cursor_blocks(cursor)


def _rule(target: str, **options: Any) -> Rule:
    return Rule(target=target, family="database", suggestion=_SQLITE, **options)


_ON_FILES = (
    "the connection has a database file: in-memory databases (':memory:', "
    "'file::memory:', mode=memory URIs) are silent"
)
_SQL_ON_FILES = _ON_FILES + ", except ATTACH and VACUUM statements"

#: Connection methods, with their predicate and condition.
_CONNECTION_METHODS = (
    ("execute", _connection_sql_blocks, _SQL_ON_FILES),
    ("executemany", _connection_sql_blocks, _SQL_ON_FILES),
    ("executescript", _connection_sql_blocks, _SQL_ON_FILES),
    ("commit", _connection_blocks, _ON_FILES),
    ("rollback", _connection_blocks, _ON_FILES),
    ("backup", _backup_blocks, "the source or the target connection has a database file"),
    ("blobopen", _connection_blocks, _ON_FILES),
    ("__exit__", _connection_blocks, _ON_FILES + " (leaving `with connection:` commits)"),
)

_CURSOR_METHODS = (
    ("execute", _cursor_sql_blocks, _SQL_ON_FILES),
    ("executemany", _cursor_sql_blocks, _SQL_ON_FILES),
    ("executescript", _cursor_sql_blocks, _SQL_ON_FILES),
    ("fetchone", _cursor_blocks, _ON_FILES),
    ("fetchmany", _cursor_blocks, _ON_FILES),
    ("fetchall", _cursor_blocks, _ON_FILES),
)

RULES: tuple[Rule, ...] = (
    _rule(
        "sqlite3:connect",
        blocks_when=_connect_blocks,
        condition="the database is a file (not ':memory:' or a mode=memory URI)",
    ),
    *(
        _rule(f"sqlite3:Connection.{method}", blocks_when=blocks_when, condition=condition)
        for method, blocks_when, condition in _CONNECTION_METHODS
    ),
    *(
        _rule(f"sqlite3:Cursor.{method}", blocks_when=blocks_when, condition=condition)
        for method, blocks_when, condition in _CURSOR_METHODS
    ),
)
