"""``[tool.loopwarden]`` in pyproject.toml, for the plugin.

The table is validated by the shared reader, :func:`loopwarden.config.settings_from_table`,
so pytest, the CLI and ``activate_from_env`` accept the same keys and values.
This module only finds the file, parses the TOML without importing loopwarden
(a project without the table pays nothing while the plugin is off) and turns
configuration errors into ``pytest.UsageError``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest import UsageError

if TYPE_CHECKING:
    from loopwarden import Rule
    from loopwarden.allowances import Allowance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ProjectConfig", "read_project_config"]


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

    Raises:
        pytest.UsageError: naming the file, the key and the valid values.
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
    from loopwarden.config import settings_from_table
    from loopwarden.errors import ConfigError

    if not isinstance(table, dict):
        raise UsageError(f"{pyproject}: [tool.loopwarden] must be a table")
    try:
        settings = settings_from_table(table, source=f"{pyproject} [tool.loopwarden]")
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    stall_ms = settings.stall_ms
    return ProjectConfig(
        path=pyproject,
        mode=settings.mode,
        # 0 switches the watchdog off in the shared reader; the plugin says None.
        stall_ms=round(stall_ms) if stall_ms else None,
        allow=settings.allow,
        rules=settings.rules,
    )
