"""Family ``process``: running child processes and waiting for them, with real children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from rules_support import (
    Case,
    CaseTable,
    Peers,
    expect_silent_on_loop,
    family_tests,
    ignoring,
    run_script,
)

# os.spawn*() fork; on 3.12+ os.fork() warns when other threads exist (the
# loop's executor threads do). The child only execs, so that warning is moot here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

CASES = CaseTable("process", module="process")
CASES.covered_elsewhere("os.wait", "os.wait3")  # they wait for *any* child: fresh interpreter

PY = sys.executable
QUICK = [PY, "-I", "-S", "-c", "pass"]


def _exited_unreaped(peers: Peers) -> subprocess.Popen[bytes]:
    """A child that has exited but not been reaped yet: waiting for it does not block."""
    child = peers.child("pass")
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # off the loop, leaves it reapable
    return child


_RUNS: dict[str, Callable[[], object]] = {
    "subprocess.run": lambda: subprocess.run(QUICK, check=True),
    "subprocess.call": lambda: subprocess.call(QUICK),
    "subprocess.check_call": lambda: subprocess.check_call(QUICK),
    "subprocess.check_output": lambda: subprocess.check_output(QUICK),
    "subprocess.getoutput": lambda: subprocess.getoutput("exit 0"),
    "subprocess.getstatusoutput": lambda: subprocess.getstatusoutput("exit 0"),
    "os.system": lambda: os.system("exit 0"),
    "os.popen": lambda: os.popen("exit 0").close(),
}


@CASES.add(*_RUNS, nonblocking=False)
def _run(peers: Peers, name: str) -> Case:
    return Case(_RUNS[name])


@CASES.add("subprocess.Popen.wait")
def _popen_wait(peers: Peers, name: str) -> Case:
    running, finished = peers.child(), _exited_unreaped(peers)
    assert running.stdin is not None
    return Case(
        lambda: running.wait(),
        unblock=running.stdin.close,
        nonblocking=[
            lambda: finished.wait(),  # reaped at once by the non-blocking attempt
            ignoring(subprocess.TimeoutExpired)(lambda: running.wait(timeout=0)),
        ],
    )


@CASES.add("subprocess.Popen.communicate")
def _popen_communicate(peers: Peers, name: str) -> Case:
    running, other = peers.child(), peers.child()
    return Case(
        lambda: running.communicate(b"bye"),  # closes stdin: the child exits
        nonblocking=[ignoring(subprocess.TimeoutExpired)(lambda: other.communicate(timeout=0))],
    )


_WAITS: dict[str, tuple[Callable[[int], object], Callable[[int], object]]] = {
    # name: (blocking form, WNOHANG form)
    "os.waitpid": (lambda pid: os.waitpid(pid, 0), lambda pid: os.waitpid(pid, os.WNOHANG)),
    "os.wait4": (lambda pid: os.wait4(pid, 0), lambda pid: os.wait4(pid, os.WNOHANG)),
    "os.waitid": (
        lambda pid: os.waitid(os.P_PID, pid, os.WEXITED),
        lambda pid: os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG),
    ),
}


@CASES.add(*_WAITS)
def _os_wait(peers: Peers, name: str) -> Case:
    blocking, polling = _WAITS[name]
    running, finished = peers.child(), _exited_unreaped(peers)
    assert running.stdin is not None
    return Case(
        lambda: blocking(running.pid),
        unblock=running.stdin.close,
        nonblocking=[lambda: polling(running.pid), lambda: blocking(finished.pid)],
    )


@CASES.add("os.posix_spawn", "os.posix_spawnp", nonblocking=False)
def _posix_spawn(peers: Peers, name: str) -> Case:
    function = name.rpartition(".")[2]

    def spawn_and_reap() -> object:
        pid = getattr(os, function)(PY, QUICK, os.environ)
        return os.waitpid(pid, 0)

    return Case(spawn_and_reap)


def _spawn(variant: str, mode: int) -> int:
    env = dict(os.environ)
    args = QUICK[1:]
    calls: dict[str, Callable[[], int]] = {
        "spawnl": lambda: os.spawnl(mode, PY, PY, *args),
        "spawnle": lambda: os.spawnle(mode, PY, PY, *args, env),
        "spawnlp": lambda: os.spawnlp(mode, PY, PY, *args),
        "spawnlpe": lambda: os.spawnlpe(mode, PY, PY, *args, env),
        "spawnv": lambda: os.spawnv(mode, PY, QUICK),
        "spawnve": lambda: os.spawnve(mode, PY, QUICK, env),
        "spawnvp": lambda: os.spawnvp(mode, PY, QUICK),
        "spawnvpe": lambda: os.spawnvpe(mode, PY, QUICK, env),
    }
    return calls[variant]()


_SPAWN_VARIANTS = (
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
)


@CASES.add(*(f"os.{variant}" for variant in _SPAWN_VARIANTS))
def _spawn_case(peers: Peers, name: str) -> Case:
    variant = name.rpartition(".")[2]

    def spawn_no_wait() -> int:
        pid = _spawn(variant, os.P_NOWAIT)
        peers.defer(os.waitpid, pid, 0)  # reaped at teardown, off the loop
        return pid

    return Case(lambda: _spawn(variant, os.P_WAIT), nonblocking=[spawn_no_wait])


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


def test_starting_a_process_is_not_a_finding(peers: Peers) -> None:
    # Popen may spawn through os.posix_spawn (close_fds=False allows it); that
    # is how asyncio starts children on the loop thread too.
    child = expect_silent_on_loop(lambda: subprocess.Popen(QUICK, close_fds=False))
    assert isinstance(child, subprocess.Popen)
    assert child.wait(timeout=60) == 0  # off the loop


_ANY_CHILD_SCRIPT = """
import asyncio, json, os, subprocess, sys
import loopwarden

name = sys.argv[1]
wait = {"os.wait": lambda: os.wait(), "os.wait3": lambda: os.wait3(0)}[name]
CHILD = [sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.read()"]
result = {}

async def on_loop(call):
    try:
        call()
    except loopwarden.BlockingCallError as error:
        return error.finding.primitive
    except ChildProcessError:
        return "no children"
    return None

async def off_loop(child):
    pending = asyncio.get_running_loop().run_in_executor(None, wait)
    child.stdin.close()
    return (await pending)[0] == child.pid

with loopwarden.guard(mode="raise") as warden:
    child = subprocess.Popen(CHILD, stdin=subprocess.PIPE)
    result["running child"] = asyncio.run(on_loop(wait))
    result["WNOHANG"] = asyncio.run(on_loop(lambda: os.wait3(os.WNOHANG)))
    result["off loop"] = asyncio.run(off_loop(child))
    done = subprocess.Popen([sys.executable, "-I", "-S", "-c", "pass"])
    os.waitid(os.P_PID, done.pid, os.WEXITED | os.WNOWAIT)
    result["exited child"] = asyncio.run(on_loop(wait))
    result["no child left"] = asyncio.run(on_loop(wait))
    result["findings"] = [f.primitive for f in warden.findings]
print(json.dumps(result))
"""


@pytest.mark.parametrize("name", ["os.wait", "os.wait3"])
def test_waiting_for_any_child(name: str) -> None:
    # In a fresh interpreter: these reap *any* child, so they must not meet
    # children of other tests, and "no child has exited" must really hold.
    result = json.loads(run_script(_ANY_CHILD_SCRIPT.replace("sys.argv[1]", repr(name))))
    assert result == {
        "running child": name,
        "WNOHANG": None,
        "off loop": True,
        "exited child": None,
        "no child left": "no children",
        "findings": [name],
    }
