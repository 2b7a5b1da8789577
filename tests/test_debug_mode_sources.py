"""asyncio's debug mode records where a task, future or handle was made: the caller's line.

The loop drops only its own creating frame (``create_task``, ``call_soon``),
so a Python wrapper of loopwarden's between the caller and the loop was left
as the place of creation: ``created at .../loopwarden/affinity/checks.py``
in a task's repr and in "Task was destroyed but it is pending!" (found on
aiosqlite's suite, whose tests create their tasks before the loop runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import loopwarden


async def _nothing() -> None:
    await asyncio.sleep(0)


def _callback() -> None:
    pass


def _made_at(made: object) -> str:
    recorded = made._source_traceback  # type: ignore[attr-defined]
    assert recorded, made
    return str(recorded[-1].filename)


@pytest.fixture
def debug_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        yield loop
    finally:
        loop.close()


@pytest.mark.parametrize("guarded", [False, True])
def test_a_task_made_before_its_loop_runs(
    debug_loop: asyncio.AbstractEventLoop, guarded: bool
) -> None:
    with loopwarden.guard(mode="record") if guarded else _unguarded():
        task = debug_loop.create_task(_nothing())
        debug_loop.run_until_complete(task)
    assert _made_at(task) == __file__


def test_a_handle_a_task_and_a_future_made_on_the_running_loop() -> None:
    def made_at(guarded: bool) -> list[str]:
        made: list[object] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            made.append(loop.call_soon(_callback))  # a user callback: scheduled with a site
            made.append(loop.create_task(_nothing()))
            future = loop.create_future()
            made.append(future)
            future.set_result(None)
            await asyncio.sleep(0)

        loop = asyncio.new_event_loop()
        loop.set_debug(True)
        try:
            with loopwarden.guard(mode="record") if guarded else _unguarded():
                loop.run_until_complete(main())
        finally:
            loop.close()
        return [_made_at(m) for m in made]

    unguarded = made_at(False)
    assert unguarded[:2] == [__file__] * 2  # (a future: asyncio names its own line)
    assert made_at(True) == unguarded


class _unguarded:  # noqa: N801 - stands where loopwarden.guard() would
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
