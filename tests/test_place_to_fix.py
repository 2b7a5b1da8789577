"""A finding names the user's own line as the place to fix, with the library frame beside it."""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import loopwarden
from loopwarden import frames
from loopwarden.report import FindingCollector, format_summary

LIBRARY = """
import time


def nap():
    time.sleep(0.001)


def log(path, text):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
"""


@pytest.fixture
def library(tmp_path: Path) -> Iterator[ModuleType]:
    """A third-party package installed in a real site-packages directory."""
    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "lw_fakelib").mkdir(parents=True)
    (site / "lw_fakelib" / "__init__.py").write_text(textwrap.dedent(LIBRARY), encoding="utf-8")
    sys.path.insert(0, str(site))
    try:
        yield importlib.import_module("lw_fakelib")
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("lw_fakelib", None)


def _record(coro_fn: object, *args: object) -> list[loopwarden.Finding]:
    async def main() -> None:
        coro_fn(*args)  # type: ignore[operator]

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    return list(warden.findings)


def _call_nap(library: ModuleType) -> None:
    library.nap()  # the place to fix


def test_library_call_names_the_users_line(library: ModuleType) -> None:
    (finding,) = _record(_call_nap, library)
    assert finding.primitive == "time.sleep"
    assert finding.user_caller.endswith(" in _call_nap")
    assert finding.user_caller.startswith(__file__)
    assert "site-packages" in finding.library_caller
    assert finding.library_caller.endswith(" in nap")
    message = finding.message
    assert f"(reached from {finding.user_caller})" in message
    assert 'loopwarden.allow("lw_fakelib", reason="...")' in message


def test_warning_points_at_the_users_line(library: ModuleType) -> None:
    async def main() -> None:
        _call_nap(library)

    with pytest.warns(loopwarden.BlockingCallWarning) as caught, loopwarden.guard(mode="warn"):
        asyncio.run(main())
    assert caught[0].filename == __file__
    assert (
        "library.nap()  # the place to fix"
        in Path(__file__).read_text().splitlines()[caught[0].lineno - 1]
    )


def test_own_code_needs_no_library_frame(tmp_path: Path) -> None:
    def write() -> None:
        (tmp_path / "x").write_text("x", encoding="utf-8")

    (finding,) = _record(write)
    assert finding.library_caller == ""
    assert "loopwarden.allow" not in finding.message


def test_scope_decides_what_is_own_code(library: ModuleType, tmp_path: Path) -> None:
    saved = frames.own_code()
    frames.set_own_code(("lw_fakelib",))
    try:
        (finding,) = _record(_call_nap, library)
    finally:
        frames.set_own_code(*saved)
    # With the library as the scope, its own line is the place to fix.
    assert finding.user_caller.endswith(" in nap")
    assert finding.library_caller == ""


def test_only_library_frames_fall_back_to_the_library_line(library: ModuleType) -> None:
    saved = frames.own_code()
    frames.set_own_code((), ("/nonexistent-project-root",))
    try:
        (finding,) = _record(_call_nap, library)
    finally:
        frames.set_own_code(*saved)
    assert finding.user_caller.endswith(" in nap")
    assert finding.library_caller == ""


def test_summary_shows_the_library_line_and_how_to_allow_it(library: ModuleType) -> None:
    collector = FindingCollector()
    collector.extend(_record(_call_nap, library))
    (group,) = collector.groups()
    assert group.user_caller.endswith(" in _call_nap")
    assert list(group.library_callers) == [collector.findings[0].library_caller]
    summary = format_summary(collector)
    assert "inside library code at " in summary and "lw_fakelib/__init__.py:6 in nap" in summary
    assert 'loopwarden.allow("lw_fakelib", reason="...")' in summary
