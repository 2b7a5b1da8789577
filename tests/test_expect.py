"""loopwarden.expect_blocking: asserting that code blocks, with and without pytest's plugin."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import loopwarden


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def test_passes_when_the_primitive_blocks_on_the_loop() -> None:
    async def main() -> list[str]:
        with loopwarden.expect_blocking("time.sleep") as warden:
            time.sleep(0.001)
        return [f.primitive for f in warden.findings]

    assert run(main) == ["time.sleep"]


def test_family_names_match_too() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("filesystem"):
            os.stat(".")

    run(main)


def test_fails_when_nothing_blocks_or_something_else_does() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("os.stat", "time.sleep"):
            time.sleep(0.001)

    with pytest.raises(AssertionError, match=r"expected os.stat .*detected: time.sleep"):
        run(main)


def test_silent_off_the_loop_so_the_expectation_fails() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("time.sleep"):
            await asyncio.to_thread(time.sleep, 0.001)

    with pytest.raises(AssertionError, match=r"expected time\.sleep"):
        run(main)
    with pytest.raises(AssertionError, match="inside a coroutine"), loopwarden.expect_blocking():
        time.sleep(0.001)  # no loop running in this thread


def test_non_blocking_form_does_not_count() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("time.sleep"):
            time.sleep(0)  # only yields the GIL

    with pytest.raises(AssertionError):
        run(main)


def test_expected_findings_are_taken_back_from_outer_wardens() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("time.sleep"):
            time.sleep(0.001)  # expected: no BlockingCallError from the outer raise guard
            os.stat(".")  # not expected: stays with the outer warden
        time.sleep(0.001)

    with loopwarden.guard(mode="record") as outer:
        run(main)
    assert [f.primitive for f in outer.findings] == ["os.stat", "time.sleep"]


def test_inside_a_raise_guard_nothing_raises() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("time.sleep"):
            time.sleep(0.001)

    with loopwarden.guard(mode="raise") as outer:
        run(main)
    assert outer.findings == []


def test_an_error_in_the_block_is_not_masked() -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("time.sleep"):
            raise KeyError("own error")

    with pytest.raises(KeyError, match="own error"):
        run(main)
