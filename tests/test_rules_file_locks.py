"""Family ``filesystem``, module ``file_locks``: fcntl.flock / fcntl.lockf that would wait."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rules_support import (
    PEER_TIMEOUT,
    Case,
    CaseTable,
    Peers,
    expect_finding,
    family_tests,
    ignoring,
)

fcntl = pytest.importorskip("fcntl")

CASES = CaseTable("filesystem", module="file_locks")


def _held_by_a_child(peers: Peers, path: Path, function: str) -> subprocess.Popen[bytes]:
    """Lock ``path`` exclusively in a child process until its stdin is closed."""
    code = (
        "import fcntl, sys\n"
        f"f = open({str(path)!r}, 'r+')\n"
        f"fcntl.{function}(f, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )

    def reap() -> None:
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        proc.wait(PEER_TIMEOUT)

    peers.defer(reap)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"locked\n"
    return proc


def _case(peers: Peers, function: str) -> Case:
    path = peers.tmp_path / "app.lock"
    path.write_text("lock")
    contended = peers.closing(path.open("r+"))
    child = _held_by_a_child(peers, path, function)
    free_path = peers.tmp_path / "free.lock"
    free_path.write_text("lock")
    free = peers.closing(free_path.open("r+"))

    def lock(file: object, operation: int) -> object:
        return getattr(fcntl, function)(file, operation)  # looked up under the guard

    def release_child() -> None:
        # Closing the child's stdin ends it, and with it its lock.
        assert child.stdin is not None
        child.stdin.close()

    return Case(
        lambda: lock(contended, fcntl.LOCK_EX),
        unblock=release_child,
        nonblocking=[
            ignoring(BlockingIOError, PermissionError)(
                lambda: lock(contended, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ),
            lambda: lock(free, fcntl.LOCK_EX),  # nobody holds it: taken at once
            lambda: lock(free, fcntl.LOCK_UN),
        ],
    )


@CASES.add("fcntl.flock")
def _flock(peers: Peers, name: str) -> Case:
    return _case(peers, "flock")


@CASES.add("fcntl.lockf")
def _lockf(peers: Peers, name: str) -> Case:
    return _case(peers, "lockf")


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


def test_finding_names_the_fix(peers: Peers) -> None:
    case = _case(peers, "flock")
    finding = expect_finding(case.blocking, "fcntl.flock")
    assert finding.family == "filesystem"
    assert "LOCK_NB" in finding.suggestion
