"""The HTML report: hostile text shown visibly (issue 12.7), test ids, cards and durations."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

import loopwarden
from loopwarden import Finding
from loopwarden.report import FindingCollector, render_html

BIDI_CONTROLS = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
]


async def _sleep_twice() -> None:
    for _ in range(2):
        time.sleep(0.001)


def _real_finding() -> Finding:
    with loopwarden.guard(mode="record") as warden:
        asyncio.run(_sleep_twice())
    return warden.findings[0]


@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_bidi_controls_are_shown_as_visible_marks(control: str) -> None:
    finding = _real_finding()
    hostile = dataclasses.replace(
        finding,
        user_caller=f"app/{control}gpj.exe:1 in on_click",
        thread_name=f"worker{control}",
        suggestion=f"Use {control}this",
    )
    collector = FindingCollector()
    collector.add(hostile)
    page = render_html(collector, title=f"report {control}")
    assert control not in page
    assert f"[U+{ord(control):04X}]" in page
    assert f"app/[U+{ord(control):04X}]gpj.exe" in page


def test_ordinary_text_is_left_alone() -> None:
    collector = FindingCollector()
    collector.add(_real_finding())
    page = render_html(collector)
    assert "[U+" not in page
