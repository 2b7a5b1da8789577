"""The documentation's code examples, run as tests.

A fenced ``python`` block in ``docs/*.md`` runs as a test when an HTML
comment marker sits on the line just before it (blank lines allowed):

* ``<!-- test -->``: run the block as a script; it must exit with status 0.
* ``<!-- test: pytest -q -->``: save the block as ``test_example.py`` and run
  ``python -m pytest -q test_example.py`` on it; pytest must exit with 0.
* ``<!-- test: file conftest.py -->``: not run; saved as ``conftest.py`` next
  to the next runnable block of the same page (multi-file examples).
* ``exit N`` (combinable with ``;``, e.g. ``<!-- test: pytest --block-detect; exit 1 -->``)
  expects exit status N instead of 0 (examples that show a failure).

Every example runs in a fresh interpreter in its own temporary directory,
with ``QT_QPA_PLATFORM=offscreen``, because loopwarden patches process-wide
and Qt examples create a QApplication.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwarden
from loopwarden.families import default_rules

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^\s*<!--\s*test(?::\s*(?P<options>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
TIMEOUT_S = 90


@dataclasses.dataclass
class Example:
    """One runnable code block of the docs."""

    page: str
    line: int
    code: str
    pytest_args: list[str] | None = None
    exit_code: int = 0
    files: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _read_block(lines: list[str], start: int, where: str) -> tuple[str, str, int]:
    """Return (language, dedented code, index after the block) of the fence at ``start``."""
    index = start
    while index < len(lines) and not lines[index].strip():
        index += 1
    opening = FENCE.match(lines[index]) if index < len(lines) else None
    if opening is None:
        raise ValueError(f"{where}: a test marker must be followed by a fenced code block")
    indent, fence = opening["indent"], opening["fence"]
    body: list[str] = []
    index += 1
    while index < len(lines) and lines[index].strip() != fence:
        body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else "")
        index += 1
    if index == len(lines):
        raise ValueError(f"{where}: the code block is not closed")
    return opening["lang"], textwrap.dedent("\n".join(body)) + "\n", index + 1


def parse_page(path: Path) -> Iterator[Example]:
    """Yield the runnable examples of one Markdown page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pending_files: dict[str, str] = {}
    index = 0
    while index < len(lines):
        marker = MARKER.match(lines[index])
        if marker is None:
            index += 1
            continue
        line_no = index + 1
        where = f"{path.name}:{line_no}"
        lang, code, index = _read_block(lines, index + 1, where)
        example = Example(page=path.name, line=line_no, code=code)
        file_name = None
        for clause in filter(None, (c.strip() for c in (marker["options"] or "").split(";"))):
            word, _, rest = clause.partition(" ")
            if word == "pytest":
                example.pytest_args = shlex.split(rest)
            elif word == "exit":
                example.exit_code = int(rest)
            elif word == "file":
                file_name = rest.strip()
            else:
                raise ValueError(f"{where}: unknown test marker option {clause!r}")
        if file_name:
            pending_files[file_name] = code
            continue
        if lang != "python":
            raise ValueError(f"{where}: only python blocks can run (found {lang!r})")
        example.files, pending_files = pending_files, {}
        yield example


def collect_examples() -> list[Example]:
    """Every runnable example of every page under docs/."""
    return [example for page in sorted(DOCS.glob("*.md")) for example in parse_page(page)]


EXAMPLES = collect_examples()


def _run(example: Example, workdir: Path) -> subprocess.CompletedProcess[str]:
    for name, content in example.files.items():
        (workdir / name).write_text(content, encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONDONTWRITEBYTECODE": "1"}
    # Examples run as a user would run them: no detection switched on from outside.
    for name in [key for key in env if key.startswith("LOOPWARDEN")]:
        del env[name]
    if example.pytest_args is None:
        script = workdir / "example.py"
        script.write_text(example.code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        (workdir / "test_example.py").write_text(example.code, encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *example.pytest_args,
            "test_example.py",
        ]
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def test_docs_have_runnable_examples() -> None:
    assert len(EXAMPLES) >= 10, [e.id for e in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_doc_example(example: Example, tmp_path: Path) -> None:
    result = _run(example, tmp_path)
    assert result.returncode == example.exit_code, (
        f"{example.id} exited with {result.returncode}, expected {example.exit_code}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def test_parser_reads_markers_options_and_files(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent(
            """\
            Text.

            <!-- test: file conftest.py -->
            ```python
            X = 1
            ```

            <!-- test: pytest -q --co; exit 1 -->

            ```python
            def test_x(): pass
            ```

            ```python
            not_a_test = True
            ```

            !!! note
                <!-- test -->
                ```python
                print("indented")
                ```
            """
        ),
        encoding="utf-8",
    )
    first, second = parse_page(page)
    assert first.pytest_args == ["-q", "--co"]
    assert first.exit_code == 1
    assert first.files == {"conftest.py": "X = 1\n"}
    assert first.code == "def test_x(): pass\n"
    assert second.code == 'print("indented")\n'
    assert second.files == {}


def test_parser_rejects_unknown_options(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- test: telepathy -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown test marker option"):
        list(parse_page(page))


def _load_hooks() -> object:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rules_page_is_generated_from_the_registry() -> None:
    hooks = _load_hooks()
    page = (DOCS / "rules.md").read_text(encoding="utf-8")
    assert hooks.RULES_PLACEHOLDER in page  # type: ignore[attr-defined]
    rendered = hooks.on_page_markdown(page)  # type: ignore[attr-defined]
    assert hooks.RULES_PLACEHOLDER not in rendered  # type: ignore[attr-defined]
    for rule in default_rules():
        assert f"| `{rule.name}` | {hooks._cell(rule.condition)} |" in rendered  # type: ignore[attr-defined]
        assert f"**Use instead:** {' '.join(rule.suggestion.split())}" in rendered
    for family in {rule.family for rule in default_rules()}:
        assert f"### `{family}`" in rendered


def test_rules_table_cells_escape_pipes() -> None:
    hooks = _load_hooks()
    rule = loopwarden.Rule(
        target="json:loads", family="custom", suggestion="a | b `c | d`", condition="x | y"
    )
    rendered = hooks.render_rules([rule])  # type: ignore[attr-defined]
    assert "**Use instead:** a | b `c | d`" in rendered  # a paragraph: no escaping needed
    assert "| x \\| y |" in rendered


def test_docstring_roles_become_cross_references() -> None:
    hooks = _load_hooks()
    html = hooks.on_page_content(  # type: ignore[attr-defined]
        "<p>See :class:<code>~loopwarden.Finding</code> and :func:<code>guard</code>.</p>"
        "<p>Public API::</p>"
    )
    assert '<autoref identifier="loopwarden.Finding" optional><code>Finding</code>' in html
    assert '<autoref identifier="loopwarden.guard" optional><code>guard</code>' in html
    assert "<p>Public API:</p>" in html
