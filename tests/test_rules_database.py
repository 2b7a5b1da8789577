"""Family ``database``: sqlite3 on real database files."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rules_support import (
    Case,
    CaseTable,
    Peers,
    expect_finding,
    expect_silent_on_loop,
    family_tests,
)

CASES = CaseTable("database")


def _database(peers: Peers) -> sqlite3.Connection:
    """A real database file with one table; usable from the loop and from workers."""
    conn = sqlite3.connect(peers.tmp_path / "app.db", check_same_thread=False)
    peers.closing(conn)
    conn.executescript(
        """
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
        INSERT INTO items (name, data) VALUES ('one', x'00'), ('two', x'01'), ('three', x'02');
        """
    )
    conn.commit()
    return conn


@CASES.add("sqlite3.connect")
def _connect(peers: Peers, name: str) -> Case:
    path = peers.tmp_path / "other.db"
    return Case(
        lambda: sqlite3.connect(path).close(),
        nonblocking=[
            lambda: sqlite3.connect(":memory:").close(),
            lambda: sqlite3.connect("file::memory:", uri=True).close(),
            lambda: sqlite3.connect("file:mem1?mode=memory&cache=shared", uri=True).close(),
        ],
    )


_CONNECTION_CALLS: dict[str, Callable[[sqlite3.Connection, Peers], object]] = {
    "execute": lambda c, _: c.execute("SELECT count(*) FROM items").fetchall(),
    "executemany": lambda c, _: c.executemany(
        "INSERT INTO items (name) VALUES (?)", [("four",), ("five",)]
    ),
    "executescript": lambda c, _: c.executescript("UPDATE items SET name = upper(name);"),
    "commit": lambda c, _: c.commit(),
    "rollback": lambda c, _: c.rollback(),
    "backup": lambda c, p: c.backup(
        p.closing(sqlite3.connect(":memory:", check_same_thread=False))
    ),
    "blobopen": lambda c, _: c.blobopen("items", "data", 1, readonly=True).close(),
}


def _leave_with(conn: sqlite3.Connection) -> None:
    with conn:  # leaving the block commits: Connection.__exit__
        pass


@CASES.add(
    *(f"sqlite3.Connection.{method}" for method in _CONNECTION_CALLS),
    "sqlite3.Connection.__exit__",
    nonblocking=False,  # every statement runs on the calling thread
)
def _connection(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    if method == "blobopen" and sys.version_info < (3, 11):
        pytest.skip("Connection.blobopen is new in Python 3.11")
    conn = _database(peers)
    if method == "__exit__":
        return Case(lambda: _leave_with(conn))
    call = _CONNECTION_CALLS[method]
    return Case(lambda: call(conn, peers))


_CURSOR_CALLS: dict[str, Callable[[sqlite3.Cursor], object]] = {
    "execute": lambda c: c.execute("SELECT name FROM items"),
    "executemany": lambda c: c.executemany("UPDATE items SET name = ? WHERE id = 1", [("uno",)]),
    "executescript": lambda c: c.executescript("UPDATE items SET name = lower(name);"),
    "fetchone": lambda c: c.fetchone(),
    "fetchmany": lambda c: c.fetchmany(2),
    "fetchall": lambda c: c.fetchall(),
}


@CASES.add(*(f"sqlite3.Cursor.{method}" for method in _CURSOR_CALLS), nonblocking=False)
def _cursor(peers: Peers, name: str) -> Case:
    call = _CURSOR_CALLS[name.rpartition(".")[2]]
    cursor = _database(peers).cursor()
    peers.closing(cursor)
    cursor.execute("SELECT name FROM items ORDER BY id")  # rows ready for the fetch* calls
    return Case(lambda: call(cursor))


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


def test_in_memory_database_opens_silently_but_queries_are_findings() -> None:
    conn = expect_silent_on_loop(lambda: sqlite3.connect(":memory:", check_same_thread=False))
    assert isinstance(conn, sqlite3.Connection)
    try:
        # Which file a connection uses is not visible from Python: every query counts.
        expect_finding(lambda: conn.execute("SELECT 1"), "sqlite3.Connection.execute")
    finally:
        conn.close()


def test_path_objects_are_database_files(tmp_path: Path) -> None:
    finding = expect_finding(lambda: sqlite3.connect(tmp_path / "x.db"), "sqlite3.connect")
    assert "aiosqlite" in finding.suggestion
