"""The HTML report in a real browser (issue 13.18, 13.19): headless Debian chromium.

The report is loaded as a user opens it (a file:// URL). A copy with one
measuring script appended (the report itself has none) records what the
browser laid out: the cards, the timeline lanes and where their labels
landed, and the expandable stacks. CI installs chromium (``.ci/run``) and
sets ``LOOPWARDEN_REQUIRE_BROWSER=1``, so there the test cannot skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from loopwarden.report import FindingCollector, write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = bool(os.environ.get("CI") or os.environ.get("LOOPWARDEN_REQUIRE_BROWSER"))

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Appended to a copy of the report: writes what the browser rendered into an attribute.
MEASURE = """<script>
const svg = document.querySelector('.timeline svg');
const view = svg ? svg.viewBox.baseVal : null;
const out = {
  cards: [...document.querySelectorAll('.card')].map(c => ({
    n: c.querySelector('.n').textContent, l: c.querySelector('.l').textContent })),
  lanes: svg ? [...svg.querySelectorAll('text.lane')].map(t => {
    const b = t.getBBox(); return {text: t.textContent, left: b.x, right: b.x + b.width};
  }) : [],
  viewWidth: view ? view.width : 0,
  groups: document.querySelectorAll('section.group').length,
  details: [...document.querySelectorAll('details')].map(d => ({
    open: d.open, summary: d.querySelector('summary').innerText,
    frames: (d.querySelector('pre') || {innerText: ''}).innerText.split('\\n').length })),
  callBars: svg ? [...svg.querySelectorAll('rect')].filter(r => {
    const t = r.querySelector('title'); return t && !t.textContent.startsWith('stall');
  }).map(r => r.getBBox().width) : [],
};
document.body.setAttribute('data-measure', JSON.stringify(out));
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail(
                "chromium is not installed but CI=1 / LOOPWARDEN_REQUIRE_BROWSER=1 requires "
                "the browser test: apt-get install -y chromium"
            )
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


def _run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(profile)},
        check=True,
    )


def _measure(browser: str, page: Path, tmp_path: Path) -> dict[str, Any]:
    harness = tmp_path / f"measure-{page.stem}.html"
    harness.write_text(
        page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
        encoding="utf-8",
    )
    dom = _run_chromium(browser, tmp_path / "profile", "--dump-dom", harness.as_uri()).stdout
    match = re.search(r'data-measure="([^"]*)"', dom)
    assert match, dom[:2000]
    data: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return data


async def _blocks(path: Path) -> None:
    for _ in range(3):
        time.sleep(0.001)
    path.read_text(encoding="utf-8")


def _recorded(tmp_path: Path, **meta: Any) -> FindingCollector:
    data = tmp_path / "data.txt"
    data.write_text("x", encoding="utf-8")
    collector = FindingCollector()
    collector.meta.update(meta)
    with loopwarden.guard(mode="record", on_finding=collector):
        asyncio.run(_blocks(data))
    collector.finish()
    return collector


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_report_renders_cards_lanes_and_expandable_stacks(
    chromium: str, tmp_path: Path
) -> None:
    collector = _recorded(tmp_path, stall_ms=None)
    page = write_html(collector, tmp_path / "report.html")
    source = page.read_text(encoding="utf-8")
    # Self-contained: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|https?://|//[a-z]", source)
    seen = _measure(chromium, page, tmp_path)
    assert seen["groups"] == len(collector.groups()) == 2
    labels = [card["l"] for card in seen["cards"]]
    assert labels == ["findings", "call sites", "run time"]  # no stall cards: no watchdog
    assert seen["cards"][0]["n"] == "4"
    assert [lane["text"] for lane in seen["lanes"]] == [
        "#1 time.sleep",
        "#2 pathlib.Path.read_text",
    ]
    assert all(lane["left"] >= 0 for lane in seen["lanes"]), seen["lanes"]
    assert len(seen["callBars"]) == 4
    stacks = [d for d in seen["details"] if d["summary"].startswith("Stack of the first call")]
    assert len(stacks) == 2
    assert stacks[0]["open"] and not stacks[1]["open"]  # the largest site's stack starts open
    assert all(d["frames"] >= 1 for d in stacks)
    shot = tmp_path / "report.png"
    _run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        page.as_uri(),
    )
    assert _png_size(shot) == (1280, 900)


def test_long_lane_labels_fit_and_stall_cards_show_when_the_watchdog_ran(
    chromium: str, tmp_path: Path
) -> None:
    collector = _recorded(tmp_path, stall_ms=100)
    long_name = "VendorSDK.Devices.QAcquisitionWorkerManager.FrameGrabberConnection.ReadFrameMW"
    sample = collector.findings[0]
    for _ in range(2):
        collector.add(dataclasses.replace(sample, primitive=long_name, user_caller="app.py:9 in f"))
    # A call that blocked for most of the run is drawn as wide as it lasted.
    span_ms = (collector.end_time - collector.started_at) * 1000
    collector.add(
        dataclasses.replace(
            sample,
            timestamp=collector.started_at,
            details={**sample.details, "duration_ms": span_ms * 0.8},
        )
    )
    page = write_html(collector, tmp_path / "long.html")
    seen = _measure(chromium, page, tmp_path)
    labels = [card["l"] for card in seen["cards"]]
    assert "stalls" in labels and "longest stall" in labels
    long_lane = next(lane for lane in seen["lanes"] if "ReadFrameMW" in lane["text"])
    assert long_lane["text"].startswith("…")  # shortened from the left, the end kept
    assert long_name[-36:] in long_lane["text"]
    for lane in seen["lanes"]:
        assert 0 <= lane["left"] < lane["right"] <= seen["viewWidth"], lane
    assert max(seen["callBars"]) > 300  # ~80 % of the lanes' width, not a 3-unit tick
