"""Family ``console``: input() and getpass with stdin replaced by a real pipe."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from typing import IO

import pytest

import loopwarden
from rules_support import (
    Case,
    CaseTable,
    Peers,
    expect_finding,
    expect_silent_on_loop,
    family_tests,
    ignoring,
    run_script,
)

CASES = CaseTable("console")
# getpass opens /dev/tty when there is one: off the loop it is tested in a
# fresh session without a terminal, so it can never wait on a developer's tty.
CASES.covered_elsewhere("getpass.getpass")


def _pipe(peers: Peers, data: bytes, *, blocking: bool = True) -> IO[str]:
    """A real pipe holding ``data``, opened as a text stream."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    os.set_blocking(read_fd, blocking)
    stream = open(read_fd, encoding="utf-8")
    return peers.closing(stream)


def _input_from(peers: Peers, stream: IO[str]) -> str:
    monkeypatch: pytest.MonkeyPatch = peers.fixture("monkeypatch")
    monkeypatch.setattr(sys, "stdin", stream)
    return input()


@CASES.add("builtins.input")
def _input(peers: Peers, name: str) -> Case:
    blocking = _pipe(peers, b"typed line\n")
    non_blocking = _pipe(peers, b"typed line\n", blocking=False)
    return Case(
        lambda: _input_from(peers, blocking),
        nonblocking=[lambda: _input_from(peers, non_blocking)],
    )


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


def test_getpass_on_the_loop_raises_before_reading() -> None:
    finding = expect_finding(lambda: getpass.getpass("password: "), "getpass.getpass")
    assert finding.family == "console"
    assert "asyncio.to_thread(input" in finding.suggestion


_GETPASS_SCRIPT = """
import asyncio, getpass, warnings
import loopwarden

warnings.simplefilter("ignore", getpass.GetPassWarning)  # no terminal: echo cannot be hidden

async def main():
    return await asyncio.to_thread(getpass.getpass, "password: ")

with loopwarden.guard(mode="raise") as warden:
    secret = asyncio.run(main())
print(repr(secret), len(warden.findings))
"""


def test_getpass_off_the_loop_is_silent() -> None:
    # A new session has no controlling terminal, so getpass reads the piped stdin.
    out = run_script(_GETPASS_SCRIPT, stdin=b"s3cret\n", new_session=True)
    assert out.splitlines()[-1] == "'s3cret' 0"


def test_input_reads_the_real_pipe_in_record_mode(peers: Peers) -> None:
    stream = _pipe(peers, b"answer\n")

    async def main() -> str:
        return _input_from(peers, stream)

    with loopwarden.guard(mode="record") as warden:
        assert asyncio.run(main()) == "answer"
    assert [f.primitive for f in warden.findings] == ["builtins.input"]


def test_input_without_any_stdin_fails_at_once_and_is_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    error = expect_silent_on_loop(ignoring(RuntimeError)(lambda: input()))
    assert isinstance(error, RuntimeError)  # "input(): lost sys.stdin"
