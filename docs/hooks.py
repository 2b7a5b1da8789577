"""mkdocs hooks: render reference tables from loopwarden's own data at build time.

The rules reference must never drift from the code, so ``docs/rules.md`` holds
only prose and placeholders; this hook replaces the placeholders with tables
built from :func:`loopwarden.families.default_rules` and
:data:`loopwarden.allowances.DEFAULT_ALLOWANCES` while mkdocs builds the site.

Placeholders (an HTML comment alone on its line):

* ``<!-- loopwarden:rules -->``: one section per family, one row per rule;
* ``<!-- loopwarden:default-allowances -->``: the built-in allowances;
* ``<!-- loopwarden:families -->``: the list of family names;
* ``<!-- loopwarden:options -->``: every configuration option, one table
  (:func:`loopwarden.config_reference.render_options_table`);
* ``<!-- loopwarden:qt-thread-messages -->``: the Qt warnings that become
  ``thread`` findings.

It also turns the Sphinx roles of loopwarden's docstrings (``:class:`~x.Y```)
into mkdocs-autorefs links in the API reference, so the docstrings stay
readable in ``help()`` and in the rendered site alike.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

RULES_PLACEHOLDER = "<!-- loopwarden:rules -->"
ALLOWANCES_PLACEHOLDER = "<!-- loopwarden:default-allowances -->"
FAMILIES_PLACEHOLDER = "<!-- loopwarden:families -->"
OPTIONS_PLACEHOLDER = "<!-- loopwarden:options -->"
QT_MESSAGES_PLACEHOLDER = "<!-- loopwarden:qt-thread-messages -->"


def _cell(text: str) -> str:
    """Make ``text`` safe inside one Markdown table cell.

    A pipe splits cells unless it is escaped; inside a code span the tables
    extension already ignores it, and an escape would show up literally.
    """
    parts = " ".join(text.split()).split("`")
    # Even-numbered parts are outside code spans.
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _rst_to_md(text: str) -> str:
    # Module docstrings use reStructuredText literals (``x``); Markdown wants `x`.
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _family_descriptions() -> dict[str, str]:
    """Family name -> first line of the docstring of the module that defines it."""
    from loopwarden import families

    descriptions: dict[str, str] = {}
    for name in families.FAMILY_MODULES:
        module = importlib.import_module(name)
        summary = (module.__doc__ or "").strip().splitlines()
        # "Family ``sleep``: sleeping on the loop thread." -> "Sleeping on the loop thread."
        text = _rst_to_md(summary[0]).split(": ", 1)[-1] if summary else ""
        for rule in getattr(module, "RULES", ()):
            if text and rule.family not in descriptions:
                descriptions[rule.family] = text[:1].upper() + text[1:]
    return descriptions


def _notes(rule: Any) -> str:
    notes = []
    if rule.target.replace(":", ".") != rule.name:
        notes.append(f"patches `{rule.target}`")
    if not rule.import_module:
        notes.append("patched only once the application has imported its module")
    if rule.check_nested:
        notes.append("calls made inside it are checked too")
    if rule.iterates:
        notes.append("the blocking happens while iterating the result")
    if rule.allowed_in:
        allowed = ", ".join(f"`{spec}`" for spec in sorted(rule.allowed_in))
        notes.append(f"excused inside {allowed}")
    return "; ".join(notes)


def render_rules(rules: Iterable[Any] | None = None) -> str:
    """Markdown for every rule, grouped by family in registry order."""
    from loopwarden.families import default_rules

    rules = tuple(default_rules() if rules is None else rules)
    descriptions = _family_descriptions()
    by_family: dict[str, list[Any]] = {}
    for rule in rules:
        by_family.setdefault(rule.family, []).append(rule)

    lines = [
        f"loopwarden ships **{len(rules)} rules** in **{len(by_family)} families**.",
        "",
    ]
    for family, family_rules in by_family.items():
        lines.extend([f"### `{family}`", ""])
        if family in descriptions:
            lines.extend([descriptions[family], ""])
        # Rules of a family often share a suggestion: print it once above its rules.
        by_suggestion: dict[str, list[Any]] = {}
        for rule in family_rules:
            by_suggestion.setdefault(rule.suggestion, []).append(rule)
        for suggestion, group in by_suggestion.items():
            lines.extend([f"**Use instead:** {' '.join(suggestion.split())}", ""])
            notes = [_notes(rule) for rule in group]
            if any(notes):
                lines.extend(["| Primitive | A finding when | Notes |", "| --- | --- | --- |"])
            else:
                lines.extend(["| Primitive | A finding when |", "| --- | --- |"])
            for rule, note in zip(group, notes, strict=True):
                row = f"| `{_cell(rule.name)}` | {_cell(rule.condition)} |"
                lines.append(f"{row} {_cell(note)} |" if any(notes) else row)
            lines.append("")
    return "\n".join(lines)


def render_default_allowances() -> str:
    """Markdown table of the built-in allowances."""
    from loopwarden.allowances import DEFAULT_ALLOWANCES

    lines = ["| Code | Why blocking is accepted there |", "| --- | --- |"]
    for allowance in DEFAULT_ALLOWANCES:
        lines.append(f"| `{_cell(allowance.spec)}` | {_cell(allowance.reason)} |")
    return "\n".join(lines) + "\n"


def render_families() -> str:
    """Markdown list of every family name a finding can carry."""
    from loopwarden import FAMILIES

    return ", ".join(f"`{family}`" for family in FAMILIES)


def render_options() -> str:
    """The configuration reference's table of every option, from the code."""
    from loopwarden.config_reference import render_options_table

    return render_options_table()


def render_qt_thread_messages() -> str:
    """Markdown table of the Qt warnings that become ``thread`` findings."""
    from loopwarden.affinity.qt_messages import MESSAGES

    lines = ["| Qt warns (text contains) | Primitive | Use instead |", "| --- | --- | --- |"]
    for message in MESSAGES:
        lines.append(
            f"| {_cell(message.text)} | `{_cell(message.name)}` | {_cell(message.suggestion)} |"
        )
    return "\n".join(lines) + "\n"


_RENDERERS = {
    OPTIONS_PLACEHOLDER: render_options,
    RULES_PLACEHOLDER: render_rules,
    QT_MESSAGES_PLACEHOLDER: render_qt_thread_messages,
    ALLOWANCES_PLACEHOLDER: render_default_allowances,
    FAMILIES_PLACEHOLDER: render_families,
}


# What Markdown makes of ":class:`~loopwarden.Finding`" inside a rendered docstring.
_SPHINX_ROLE = re.compile(
    r":(?:class|func|meth|attr|data|exc|mod|obj):<code>(?P<short>~?)(?P<target>[\w.]+)</code>"
)
# reStructuredText's "Example::" introduces a literal block; Markdown keeps both colons.
_RST_LITERAL_INTRO = re.compile(r"(\w)::</p>")


def _autoref(match: re.Match[str]) -> str:
    target = match["target"]
    title = target.rsplit(".", 1)[-1] if match["short"] else target
    # Unqualified names in loopwarden's docstrings refer to its top-level API.
    identifier = target if "." in target else f"loopwarden.{target}"
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def on_page_content(html: str, **_: Any) -> str:
    """mkdocs hook: render docstrings' Sphinx roles as cross-references."""
    html = _SPHINX_ROLE.sub(_autoref, html)
    return _RST_LITERAL_INTRO.sub(r"\1:</p>", html)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs hook: replace the placeholders on any page with generated Markdown."""
    for placeholder, render in _RENDERERS.items():
        if placeholder in markdown:
            markdown = markdown.replace(placeholder, render())
    return markdown
