"""Troubleshooting headings for configuration mistakes are the messages the code produces."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import loopwarden
from loopwarden.config import settings_from_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
HEADINGS = [
    match.group(1)
    for match in re.finditer(r"^#{2,4} `(.+)`$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
]


@pytest.fixture
def mylib(tmp_path: Path) -> Iterator[types.ModuleType]:
    """A real, imported module with a read_settings function."""
    (tmp_path / "mylib.py").write_text("def read_settings():\n    pass\n", encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        import mylib

        yield mylib
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mylib", None)


def _message(make: Callable[[], object]) -> str:
    with pytest.raises(loopwarden.ConfigError) as info:
        make()
    return str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: loopwarden.allow_blocking("filesytem", reason="x"),
        lambda: settings_from_table({"rules": [{"target": "json:JSONDecoder", "suggestion": "x"}]}),
        lambda: settings_from_table({"stall_ms": 0.4}),
    ],
    ids=["unknown-primitive", "class-target", "stall-minimum"],
)
def test_config_error_is_a_heading(make: Callable[[], object]) -> None:
    assert _message(make) in HEADINGS


def test_missing_qualname_is_a_heading(mylib: types.ModuleType) -> None:
    message = _message(lambda: loopwarden.allow("mylib:reed_settings", reason="x"))
    assert message in HEADINGS


def test_corrupt_report_is_a_heading(tmp_path: Path) -> None:
    from reports_helpers import run_cli

    (tmp_path / "findings.json").write_text("", encoding="utf-8")
    line = run_cli("report", "findings.json", cwd=tmp_path).stderr.strip()
    prefix = "loopwarden: cannot read report 'findings.json': "
    assert line.startswith(prefix)
    assert prefix + "..." in HEADINGS
