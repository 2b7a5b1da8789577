"""Reports: grouping findings by call site, and writing them for people and tools.

* :class:`FindingCollector` gathers findings (pass it as ``on_finding``) into
  call-site groups with bounded memory;
* :func:`print_summary` prints the terminal summary;
* :func:`write_report` writes the JSON or HTML report, chosen by the suffix.
"""

from __future__ import annotations

import os
from pathlib import Path

from loopwarden.errors import ConfigError
from loopwarden.report.grouping import FindingCollector, FindingGroup, TimelinePoint
from loopwarden.report.html_report import render_html, write_html
from loopwarden.report.json_report import (
    SCHEMA,
    VERSION,
    load_report,
    merge_collectors,
    report_from_data,
    report_to_dict,
    write_json,
)
from loopwarden.report.terminal import format_summary, print_summary

__all__ = [
    "SCHEMA",
    "VERSION",
    "FindingCollector",
    "FindingGroup",
    "TimelinePoint",
    "format_summary",
    "load_report",
    "merge_collectors",
    "print_summary",
    "render_html",
    "report_from_data",
    "report_to_dict",
    "write_html",
    "write_json",
    "write_report",
]


def write_report(collector: FindingCollector, path: str | os.PathLike[str]) -> Path:
    """Write the report ``path`` asks for: ``.json`` or ``.html``.

    Raises:
        ConfigError: for any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return write_json(collector, path)
    if suffix in (".html", ".htm"):
        return write_html(collector, path)
    raise ConfigError(
        f"cannot tell the report format from {os.fspath(path)!r}; use a name ending in "
        ".json or .html"
    )
