"""``threads.running_loop``: the question every patched call asks first.

On CPython 3.10 and 3.11 it is the C extension's reader, which answers what
``_asyncio._get_running_loop`` answers without that function's ``getpid()``
system call (see ``running_loop`` in ``_speedups.c``). Here: both readers agree
wherever a loop can run or stop running (asyncio, a worker thread's own loop,
uvloop, qasync, a forked child), the fast reader is only used while asyncio
records its loop in C, and it leaks no reference.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from loopwarden import native, threads

ROOT = Path(__file__).resolve().parent.parent
asyncio_reader = asyncio.events._get_running_loop
FAST = getattr(native.speedups, "running_loop", None)


def both() -> tuple[Any, Any]:
    return threads.running_loop(), asyncio_reader()


def test_the_fast_reader_is_used_exactly_where_asyncio_checks_a_pid() -> None:
    if native.speedups is None:
        assert threads.running_loop is asyncio_reader
    elif sys.version_info < (3, 12) and sys.platform != "win32":
        assert FAST is not None
        assert threads.running_loop is FAST
    else:
        # 3.12 dropped the pid check: asyncio's own reader costs nothing more.
        assert FAST is None
        assert threads.running_loop is asyncio_reader


def test_no_loop_is_none_before_during_and_after_a_loop() -> None:
    assert both() == (None, None)
    seen: list[tuple[Any, Any]] = []

    async def main() -> asyncio.AbstractEventLoop:
        seen.append(both())
        await asyncio.sleep(0)
        seen.append(both())
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert seen == [(loop, loop), (loop, loop)]
    assert both() == (None, None)


def test_each_thread_sees_its_own_loop() -> None:
    inner: list[tuple[Any, Any]] = []

    def worker() -> None:
        inner.append(both())  # while the main thread's loop runs: none here

        async def own() -> asyncio.AbstractEventLoop:
            inner.append(both())
            return asyncio.get_running_loop()

        loop = asyncio.run(own())
        inner.append((loop, loop))
        inner.append(both())

    async def main() -> asyncio.AbstractEventLoop:
        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        assert both() == (asyncio.get_running_loop(),) * 2
        return asyncio.get_running_loop()

    asyncio.run(main())
    assert inner[0] == (None, None)
    assert inner[1] == inner[2]  # the worker's loop, as both readers saw it
    assert inner[1][0] is not None
    assert inner[3] == (None, None)


def test_uvloop_and_a_stopped_then_restarted_loop() -> None:
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:

        async def probe() -> tuple[Any, Any]:
            return both()

        assert loop.run_until_complete(probe()) == (loop, loop)
        assert both() == (None, None)
        assert loop.run_until_complete(probe()) == (loop, loop)
    finally:
        loop.close()
    assert both() == (None, None)


def test_qasync_loop(qapp: Any) -> None:
    qasync = pytest.importorskip("qasync")
    loop = qasync.QEventLoop(qapp)
    try:

        async def probe() -> tuple[Any, Any]:
            await asyncio.sleep(0)
            return both()

        assert loop.run_until_complete(probe()) == (loop, loop)
    finally:
        loop.close()
    assert both() == (None, None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_on_the_loop_thread_runs_no_loop() -> None:
    # asyncio says "no loop" in the child (the loop belongs to the parent); the
    # fast reader must too: its pid is set again in the child (pthread_atfork).
    async def main() -> tuple[str, tuple[Any, Any]]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report both answers, then a grandchild's
            try:
                answers = [both()]
                grandchild = os.fork()
                if grandchild == 0:
                    os.write(write, repr(both()).encode() + b"|")
                    os._exit(0)
                os.waitpid(grandchild, 0)
                os.write(write, repr(answers[0]).encode())
            finally:
                os._exit(0)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 4096):
            chunks.append(chunk)
        os.close(read)
        os.waitpid(pid, 0)
        return b"".join(chunks).decode(), both()

    text, in_parent = asyncio.run(main())
    assert text == "(None, None)|(None, None)"
    assert in_parent[0] is in_parent[1]  # the parent's loop, still running there
    assert in_parent[0] is not None


def test_the_last_lookup_kept_follows_every_change_of_the_thread_dict() -> None:
    # The fast reader keeps its last lookup while the thread state dict shows the
    # same version; asyncio's set_running_loop, a threading.local's first use on
    # a thread and another thread's reads all change what it must answer next.
    set_loop = asyncio.events._set_running_loop
    loops = [asyncio.new_event_loop() for _ in range(2)]
    seen: list[tuple[Any, Any]] = []
    mismatches: list[tuple[Any, Any]] = []

    def check() -> None:
        answer = both()
        seen.append(answer)
        if answer[0] is not answer[1]:
            mismatches.append(answer)

    def in_other_threads() -> None:
        for _ in range(3):
            worker = threading.Thread(target=lambda: (check(), set_loop(loops[1]), check()))
            worker.start()  # a thread dict of its own; maybe at a freed one's address
            worker.join()

    try:
        for step in range(40):
            check()
            set_loop(loops[step % 2])
            check()
            local = threading.local()
            local.value = step  # adds an entry to this thread's dict: a new version
            check()
            in_other_threads()
            check()
            set_loop(None)
            check()
    finally:
        set_loop(None)
        for loop in loops:
            loop.close()
    assert mismatches == []
    assert any(answer[0] is loops[0] for answer in seen)
    assert any(answer[0] is loops[1] for answer in seen)
    assert both() == (None, None)


def test_the_fast_reader_leaks_no_reference() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        before = sys.getrefcount(loop)
        for _ in range(10_000):
            threads.running_loop()
        return before, sys.getrefcount(loop)

    before, after = asyncio.run(main())
    assert after == before


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_asyncio_in_pure_python_keeps_its_own_reader() -> None:
    # Where asyncio records its loop in Python (no C _asyncio in use), the fast
    # reader, which reads the C record, would never see a loop: not used then.
    code = """
import asyncio, time, asyncio.events as events
events._get_running_loop = asyncio._get_running_loop = events._py__get_running_loop
events._set_running_loop = asyncio._set_running_loop = events._py__set_running_loop
import loopwarden
from loopwarden import threads
assert threads.running_loop is events._py__get_running_loop, threads.running_loop
async def main():
    with loopwarden.guard(mode="record") as warden:
        time.sleep(0.001)
    return len(warden.findings)
print(asyncio.run(main()))
"""
    assert _run(code) == "1"


def test_pure_python_mode_uses_asyncio_s_reader() -> None:
    code = """
import asyncio
from loopwarden import native, threads
assert native.speedups is None
print(threads.running_loop is asyncio.events._get_running_loop)
"""
    assert _run(code, LOOPWARDEN_PURE_PYTHON="1") == "True"
