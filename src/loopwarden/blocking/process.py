"""Family ``process``: running child processes and waiting for them.

Starting a process with ``subprocess.Popen`` is not a finding (asyncio's
``create_subprocess_exec`` does exactly that on the loop thread); waiting for
it is. The ``os.wait*`` rules look before they report: a child that has
already exited is reaped at once, so only a wait for a running child counts.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

from loopwarden.rules import NOT_BLOCKED, Rule

__all__ = ["RULES"]

_RUN = (
    "Use `proc = await asyncio.create_subprocess_exec(...)` (or `create_subprocess_shell`) "
    "and `await proc.communicate()` / `await proc.wait()`; in Qt code use QProcess and its "
    "finished signal. To keep a synchronous call, `await asyncio.to_thread(subprocess.run, ...)`."
)
_WAIT = (
    "Waiting for a child process stops the loop until it exits. Let asyncio watch it "
    "(`asyncio.create_subprocess_exec`, then `await proc.wait()`), poll with `os.WNOHANG`, or "
    "wait in a worker: `await asyncio.to_thread(os.waitpid, pid, 0)`."
)

_WNOHANG = getattr(os, "WNOHANG", 0)


def _would_wait(timeout: float | None) -> bool:
    return timeout is None or timeout > 0


def _child_would_block(idtype: int, ident: int, options: int) -> bool:
    """Peek (without reaping) whether a wait would find no child ready.

    ``waitid(..., WNOWAIT)`` leaves the child for the real call to reap.
    Without ``os.waitid`` (macOS) every wait counts as blocking.
    """
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return True
    try:
        return waitid(idtype, ident, options | _WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False  # no such child: the real call fails at once
    except OSError:
        return True


def _pid_target(pid: int) -> tuple[int, int]:
    """``waitpid``'s pid argument as ``waitid``'s (idtype, id)."""
    if pid > 0:
        return os.P_PID, pid
    if pid == -1:
        return os.P_ALL, 0
    if pid == 0:
        return os.P_PGID, os.getpgrp()
    return os.P_PGID, -pid


def _waitpid_blocks(pid: int, options: int) -> bool:
    if options & _WNOHANG:
        return False
    # waitpid always reports exits; WUNTRACED/WCONTINUED add stops and resumptions.
    flags = os.WEXITED | (options & (os.WUNTRACED | os.WCONTINUED))
    return _child_would_block(*_pid_target(pid), flags)


def _wait_blocks() -> bool:
    return _waitpid_blocks(-1, 0)


def _wait3_blocks(options: int) -> bool:
    return _waitpid_blocks(-1, options)


def _waitid_blocks(idtype: int, ident: int, options: int) -> bool:
    return not options & _WNOHANG and _child_would_block(idtype, ident, options)


def _spawn_blocks(mode: int, *_: object) -> bool:
    return mode == getattr(os, "P_WAIT", 0)


def _popen_wait_blocks(popen: subprocess.Popen[Any], timeout: float | None = None) -> bool:
    return _would_wait(timeout)


def _popen_wait_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # poll() reaps an exited child without waiting; wait() would return the same code.
    returncode = args[0].poll()
    return NOT_BLOCKED if returncode is None else returncode


def _communicate_blocks(
    popen: subprocess.Popen[Any], input: object = None, timeout: float | None = None
) -> bool:
    return _would_wait(timeout)


def _rule(target: str, suggestion: str, **options: Any) -> Rule:
    return Rule(target=target, family="process", suggestion=suggestion, **options)


_RUNS_AND_WAITS = "always: runs a process and waits for it"
_RUN_TARGETS = (
    ("subprocess:run", _RUNS_AND_WAITS),
    ("subprocess:call", _RUNS_AND_WAITS),
    ("subprocess:check_call", _RUNS_AND_WAITS),
    ("subprocess:check_output", _RUNS_AND_WAITS),
    ("subprocess:getoutput", _RUNS_AND_WAITS),
    ("subprocess:getstatusoutput", _RUNS_AND_WAITS),
    ("os:system", _RUNS_AND_WAITS),
    ("os:popen", "always: starts a shell; reading its output and close() wait for it"),
)

_SPAWN_TARGETS = tuple(
    f"os:spawn{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")
)

#: subprocess.Popen spawns through os.posix_spawn when it can; starting a
#: process is not the finding, waiting for it is.
_POPEN_INTERNALS = frozenset({"subprocess:Popen._posix_spawn", "subprocess:Popen._execute_child"})

RULES: tuple[Rule, ...] = (
    *(_rule(target, _RUN, condition=condition) for target, condition in _RUN_TARGETS),
    _rule(
        "subprocess:Popen.wait",
        _WAIT,
        blocks_when=_popen_wait_blocks,
        attempt=_popen_wait_attempt,
        condition="the process is still running and timeout is None or > 0",
    ),
    _rule(
        "subprocess:Popen.communicate",
        _RUN,
        blocks_when=_communicate_blocks,
        condition="timeout is None or > 0: waits for the process and its pipes",
    ),
    _rule(
        "os:wait",
        _WAIT,
        blocks_when=_wait_blocks,
        condition="no child has exited yet",
    ),
    _rule(
        "os:waitpid",
        _WAIT,
        blocks_when=_waitpid_blocks,
        condition="options lack WNOHANG and the child has not exited yet",
    ),
    _rule(
        "os:wait3",
        _WAIT,
        blocks_when=_wait3_blocks,
        condition="options lack WNOHANG and no child has exited yet",
    ),
    _rule(
        "os:wait4",
        _WAIT,
        blocks_when=_waitpid_blocks,
        condition="options lack WNOHANG and the child has not exited yet",
    ),
    _rule(
        "os:waitid",
        _WAIT,
        blocks_when=_waitid_blocks,
        condition="options lack WNOHANG and no matching child is ready yet",
    ),
    *(
        _rule(
            target,
            _RUN,
            condition="always: forks and executes a program on the loop thread",
            allowed_in=_POPEN_INTERNALS,
        )
        for target in ("os:posix_spawn", "os:posix_spawnp")
    ),
    *(
        _rule(target, _RUN, blocks_when=_spawn_blocks, condition="mode is os.P_WAIT")
        for target in _SPAWN_TARGETS
    ),
)
