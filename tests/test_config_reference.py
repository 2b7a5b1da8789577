"""The configuration reference is generated from the code and lists every option."""

from __future__ import annotations

import re
from pathlib import Path

from loopwarden import config
from loopwarden.config_reference import SETTINGS, collect_places, render_options_table

ROOT = Path(__file__).resolve().parents[1]


def test_every_option_the_code_accepts_is_in_the_table() -> None:
    table = render_options_table()
    places = collect_places()
    for place in ("pytest", "ini", "pyproject", "env", "run", "code"):
        assert places[place], place  # the collectors found something
        for found in places[place].values():
            assert found.label in table, (place, found.key)
    # Spot checks that name real options, so an empty collector cannot pass.
    for text in (
        "`--block-detect[=MODE]`",
        "`--block-detect-report=PATH`",
        "`block_detect_stall_ms`",
        "`--stall-ms N`",
        "`LOOPWARDEN_ALLOW` (also pytest)",
        "`report` (not pytest)",
        "`guard(stall_ms=...)`",
    ):
        assert text in table


def test_every_loopwarden_variable_in_the_code_is_a_listed_one() -> None:
    # A new LOOPWARDEN_* variable must join config.ENV_VARIABLES, hence the table.
    pattern = re.compile(r"""["'](LOOPWARDEN(?:_[A-Z_]+)?)["']""")
    found: set[str] = set()
    for root in ("src", "conftest_plugin"):
        for path in (ROOT / root).rglob("*.py"):
            found.update(pattern.findall(path.read_text(encoding="utf-8")))
    assert "LOOPWARDEN_ALLOW" in found
    assert found <= set(config.ENV_VARIABLES), found - set(config.ENV_VARIABLES)


def test_an_option_missing_from_the_descriptions_still_gets_a_row() -> None:
    without_scope = tuple(doc for doc in SETTINGS if doc.pytest != "block_detect_scope")
    table = render_options_table(without_scope)
    row = next(line for line in table.splitlines() if "--block-detect-scope" in line)
    assert row.startswith("| **block_detect_scope** |")
    assert "`block_detect_scope`" in row  # its ini name joins the same row
    assert "Keep only findings whose stack passes through" in row  # the option's help


def test_no_default_stall_threshold_is_claimed() -> None:
    table = render_options_table()
    row = next(line for line in table.splitlines() if "Stall watchdog" in line)
    assert "Default: **off**" in row
    assert f"at least {config.MIN_STALL_MS:g}" in row
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "<!-- loopwarden:options -->" in page
    assert "default threshold" not in page
