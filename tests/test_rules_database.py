"""Family ``database``: sqlite3 on real database files."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loopwarden.families import default_rules
from rules_support import (
    Case,
    CaseTable,
    Peers,
    expect_finding,
    expect_silent_on_loop,
    family_tests,
    ignoring,
)

CASES = CaseTable("database")
# QtSql rules (family database) run on a Qt loop: tests/qt/test_qt_io_rules.py.
CASES.covered_elsewhere(
    *(rule.name for rule in default_rules() if rule.target.startswith("PySide6.QtSql"))
)


def _database(peers: Peers, where: str | None = None, *, uri: bool = False) -> sqlite3.Connection:
    """A real database (a file unless ``where`` says otherwise) with one table.

    Usable from the loop and from workers.
    """
    target = where if where is not None else peers.tmp_path / "app.db"
    conn = sqlite3.connect(target, check_same_thread=False, uri=uri)
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


#: In-memory databases, each way of naming one: (database, uri).
_IN_MEMORY = (
    (":memory:", False),
    ("file::memory:?cache=shared", True),
    ("file:loopwarden_mem?mode=memory&cache=shared", True),
)


def _in_memory(peers: Peers) -> list[sqlite3.Connection]:
    return [_database(peers, where, uri=uri) for where, uri in _IN_MEMORY]


@CASES.add(
    *(f"sqlite3.Connection.{method}" for method in _CONNECTION_CALLS),
    "sqlite3.Connection.__exit__",
)
def _connection(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    if method == "blobopen" and sys.version_info < (3, 11):
        pytest.skip("Connection.blobopen is new in Python 3.11")
    conn = _database(peers)
    memory = _in_memory(peers)  # statements on them touch no disk
    if method == "__exit__":
        return Case(
            lambda: _leave_with(conn),
            nonblocking=[lambda m=m: _leave_with(m) for m in memory],
        )
    call = _CONNECTION_CALLS[method]
    return Case(
        lambda: call(conn, peers),
        nonblocking=[lambda m=m: call(m, peers) for m in memory],
    )


_CURSOR_CALLS: dict[str, Callable[[sqlite3.Cursor], object]] = {
    "execute": lambda c: c.execute("SELECT name FROM items"),
    "executemany": lambda c: c.executemany("UPDATE items SET name = ? WHERE id = 1", [("uno",)]),
    "executescript": lambda c: c.executescript("UPDATE items SET name = lower(name);"),
    "fetchone": lambda c: c.fetchone(),
    "fetchmany": lambda c: c.fetchmany(2),
    "fetchall": lambda c: c.fetchall(),
}


def _cursor_on(peers: Peers, conn: sqlite3.Connection) -> sqlite3.Cursor:
    cursor = peers.closing(conn.cursor())
    cursor.execute("SELECT name FROM items ORDER BY id")  # rows ready for the fetch* calls
    return cursor


@CASES.add(*(f"sqlite3.Cursor.{method}" for method in _CURSOR_CALLS))
def _cursor(peers: Peers, name: str) -> Case:
    call = _CURSOR_CALLS[name.rpartition(".")[2]]
    cursor = _cursor_on(peers, _database(peers))
    memory = [_cursor_on(peers, conn) for conn in _in_memory(peers)]
    return Case(
        lambda: call(cursor),
        nonblocking=[lambda m=m: call(m) for m in memory],
    )


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


def test_in_memory_database_is_silent_from_connect_to_close() -> None:
    def work() -> list[tuple[int]]:
        conn = sqlite3.connect(":memory:")
        try:
            conn.row_factory = sqlite3.Row  # our own check must not depend on it
            conn.execute("CREATE TABLE t (x INTEGER)")
            conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            conn.commit()
            return [tuple(row) for row in conn.execute("SELECT x FROM t").fetchall()]
        finally:
            conn.close()

    assert expect_silent_on_loop(work) == [(1,), (2,)]


def test_attaching_a_file_to_an_in_memory_database_fires(tmp_path: Path) -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        finding = expect_finding(
            lambda: conn.execute("ATTACH DATABASE ? AS other", (str(tmp_path / "other.db"),)),
            "sqlite3.Connection.execute",
        )
        assert finding.family == "database"
        conn.execute("ATTACH DATABASE ? AS other", (str(tmp_path / "other.db"),))
        # Once a file is attached, every statement may touch it.
        expect_finding(lambda: conn.execute("SELECT 1"), "sqlite3.Connection.execute")
    finally:
        conn.close()


def test_backup_of_an_in_memory_database_into_a_file_fires(tmp_path: Path) -> None:
    source = sqlite3.connect(":memory:", check_same_thread=False)
    target = sqlite3.connect(tmp_path / "copy.db", check_same_thread=False)
    try:
        expect_finding(lambda: source.backup(target), "sqlite3.Connection.backup")
    finally:
        source.close()
        target.close()


def test_closed_connection_is_silent() -> None:
    conn = sqlite3.connect(":memory:")
    conn.close()
    error = expect_silent_on_loop(
        ignoring(sqlite3.ProgrammingError)(lambda: conn.execute("SELECT 1"))
    )
    assert isinstance(error, sqlite3.ProgrammingError)


def test_path_objects_are_database_files(tmp_path: Path) -> None:
    finding = expect_finding(lambda: sqlite3.connect(tmp_path / "x.db"), "sqlite3.connect")
    assert "aiosqlite" in finding.suggestion
