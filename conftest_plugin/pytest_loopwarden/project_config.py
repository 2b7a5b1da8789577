"""``[tool.loopwarden]`` in pyproject.toml: mode, stall_ms, allowances and extra rules.

Interim reader local to the plugin: it should be replaced by the shared
``loopwarden.config`` reader once that lands (same table, same keys)::

    [tool.loopwarden]
    mode = "warn"             # raise | warn | record | off (plugin: also fail)
    stall_ms = 200
    allow = [
        { target = "mypkg.cache:warm_up", reason = "runs once before the UI shows" },
        { target = "mypkg.legacy", reason = "being ported", primitives = ["os.stat"] },
    ]

    [[tool.loopwarden.rules]]         # or rules = [{ ... }]
    target = "mypkg.db:query"
    suggestion = "Use mypkg.db.aquery()."
    family = "database"               # optional, default "custom"
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest import UsageError

if TYPE_CHECKING:
    from loopwarden import Rule
    from loopwarden.allowances import Allowance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ProjectConfig", "read_project_config"]

_RULE_KEYS = frozenset({"target", "suggestion", "family", "condition", "name"})
_ALLOW_KEYS = frozenset({"target", "reason", "primitives"})


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """What ``[tool.loopwarden]`` says (empty when there is no such table)."""

    path: Path | None = None
    mode: str | None = None
    stall_ms: int | None = None
    allow: tuple[Allowance, ...] = ()
    rules: tuple[Rule, ...] = ()


def read_project_config(pyproject: Path | None) -> ProjectConfig:
    """Read ``[tool.loopwarden]`` from ``pyproject`` (a missing file or table: empty).

    loopwarden itself is imported only if the table has allowances or rules,
    so a project without them pays nothing while the plugin is off.

    Raises:
        pytest.UsageError: naming the file, the key and what is expected.
    """
    if pyproject is None or not pyproject.is_file():
        return ProjectConfig()
    try:
        with pyproject.open("rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{pyproject}: cannot read [tool.loopwarden]: {exc}") from exc
    table = data.get("tool", {}).get("loopwarden")
    if table is None:
        return ProjectConfig()
    if not isinstance(table, dict):
        raise UsageError(f"{pyproject}: [tool.loopwarden] must be a table")
    where = f"{pyproject} [tool.loopwarden]"
    mode = table.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise UsageError(f"{where}: mode must be a string such as 'warn'")
    stall_ms = table.get("stall_ms")
    if stall_ms is not None and (
        not isinstance(stall_ms, int) or isinstance(stall_ms, bool) or stall_ms <= 0
    ):
        raise UsageError(f"{where}: stall_ms must be a positive number of milliseconds")
    return ProjectConfig(
        path=pyproject,
        mode=mode,
        stall_ms=stall_ms,
        allow=tuple(_allowance(entry, where) for entry in _entries(table, "allow", where)),
        rules=tuple(_rule(entry, where) for entry in _entries(table, "rules", where)),
    )


def _entries(table: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    entries = table.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{where}: {key} must be a list of inline tables")
    return entries


def _allowance(entry: dict[str, Any], where: str) -> Allowance:
    unknown = set(entry) - _ALLOW_KEYS
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {sorted(unknown)} in allow; valid keys: "
            f"{', '.join(sorted(_ALLOW_KEYS))}"
        )
    primitives = entry.get("primitives", [])
    if not isinstance(primitives, list):
        raise UsageError(f"{where}: allow primitives must be a list of names")
    from loopwarden.allowances import parse_allowance

    try:
        return parse_allowance(entry.get("target", ""), entry.get("reason", ""), primitives)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from exc


def _rule(entry: dict[str, Any], where: str) -> Rule:
    unknown = set(entry) - _RULE_KEYS
    if unknown or "target" not in entry or "suggestion" not in entry:
        raise UsageError(
            f"{where}: each rule needs target and suggestion (optional: family, "
            f"condition, name); got {sorted(entry)}"
        )
    from loopwarden import Rule

    try:
        return Rule(**{"family": "custom", **entry})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: {exc}") from exc
