"""Flushes that seek()/tell()/truncate() make are named after the call that made them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import loopwarden
from loopwarden.report import FindingCollector, format_summary


def _in_loop(work: Callable[[], None]) -> FindingCollector:
    collector = FindingCollector()

    async def main() -> None:
        work()

    with loopwarden.guard(mode="record", on_finding=collector):
        asyncio.run(main())
    return collector


def _labels(collector: FindingCollector) -> list[tuple[str, str | None, str]]:
    return [
        (f.primitive, f.details.get("via"), f.user_caller.rsplit(" in ", 1)[1].rsplit(".", 1)[-1])
        for f in collector.findings
    ]


def test_text_seek_flush_is_named_via_seek(tmp_path: Path) -> None:
    handle: IO[Any] = open(tmp_path / "t.txt", "w", encoding="utf-8")

    def seek_after_write() -> None:
        handle.write("hello")
        handle.seek(0)  # flushes "hello" first

    try:
        collector = _in_loop(seek_after_write)
    finally:
        handle.close()
    assert _labels(collector) == [
        ("io.TextIOWrapper.write", None, "seek_after_write"),
        ("io.TextIOWrapper.flush", "seek", "seek_after_write"),
    ]
    seek_finding = collector.findings[1]
    assert "Blocking call io.TextIOWrapper.flush() (via seek)" in seek_finding.message
    seek_line = seek_after_write.__code__.co_firstlineno + 2
    assert seek_finding.user_caller.split(" in ")[0].endswith(f":{seek_line}")
    groups = {g.user_caller: g for g in collector.groups()}
    assert groups[seek_finding.user_caller].what == "io.TextIOWrapper.flush() (via seek)"


def test_binary_seek_and_text_tell(tmp_path: Path) -> None:
    binary: IO[bytes] = open(tmp_path / "b.bin", "wb")
    text: IO[str] = open(tmp_path / "t.txt", "w", encoding="utf-8")

    def work() -> None:
        binary.write(b"abc")
        binary.seek(0)  # BufferedWriter writes its buffer to the raw file
        text.write("x")
        text.tell()  # TextIOWrapper writes pending text, then flushes

    try:
        collector = _in_loop(work)
    finally:
        binary.close()
        text.close()
    vias = [(f.primitive, f.details.get("via")) for f in collector.findings]
    assert ("io.FileIO.write", "seek") in vias
    assert ("io.TextIOWrapper.flush", "tell") in vias
    summary = format_summary(collector, max_groups=10)
    assert "io.FileIO.write() (via seek)" in summary
    assert "(via tell)" in summary


def test_silent_off_the_loop(tmp_path: Path) -> None:
    handle: IO[str] = open(tmp_path / "t.txt", "w", encoding="utf-8")

    def seek_after_write() -> None:
        handle.write("hello")
        handle.seek(0)
        handle.tell()

    async def main() -> None:
        await asyncio.to_thread(seek_after_write)  # an executor thread: not guarded

    try:
        with loopwarden.guard(mode="record") as warden:
            asyncio.run(main())
            worker = threading.Thread(target=seek_after_write)  # a plain thread
            worker.start()
            worker.join(5)
    finally:
        handle.close()
    assert warden.findings == []
