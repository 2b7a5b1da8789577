"""Command-line and ini options, and the settings resolved from them.

Precedence for each setting: command line > ini option (``[tool.pytest.ini_options]``,
pytest.ini, ...) > ``[tool.loopwarden]`` in pyproject.toml > default (off).
Allowances add up: ``[tool.loopwarden] allow`` and ``LOOPWARDEN_ALLOW`` both apply.

``[tool.loopwarden]`` and ``LOOPWARDEN_ALLOW`` are read by loopwarden's one
configuration reader, :mod:`loopwarden.config`, which imports none of the
patching core: with the plugin off, nothing is patched or loaded beyond it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from loopwarden import config as _config
from loopwarden.errors import ConfigError
from loopwarden.suggest import did_you_mean

if TYPE_CHECKING:
    from loopwarden.allowances import Allowance

__all__ = [
    "PLUGIN_MODES",
    "Settings",
    "add_options",
    "resolve_settings",
    "split_bare_flag",
    "warden_mode",
    "warden_mode_for",
]

#: Values of ``--block-detect``; a bare flag means ``fail``.
PLUGIN_MODES: tuple[str, ...] = ("fail", "raise", "warn", "record", "off")

_FLAG = "--block-detect"


def add_options(parser: pytest.Parser) -> None:
    """Register the command-line and ini options."""
    group = parser.getgroup("loopwarden", "loopwarden: blocking calls on event-loop threads")
    group.addoption(
        _FLAG,
        dest="block_detect",
        nargs="?",
        const="fail",
        default=None,
        metavar="MODE",
        help="Detect blocking calls on event-loop threads in every test. MODE: "
        "fail (default: the call proceeds, the test fails at the end of the phase), "
        "raise (also raise BlockingCallError at the call), warn, record or off.",
    )
    group.addoption(
        "--block-detect-scope",
        dest="block_detect_scope",
        default=None,
        metavar="PKG[,PKG...]",
        help="Keep only findings whose stack passes through these packages.",
    )
    group.addoption(
        "--block-detect-report",
        dest="block_detect_report",
        default=None,
        metavar="PATH",
        help="Write every finding of the session to PATH: PATH.json (for tools and "
        "`loopwarden report`) or PATH.html (the HTML report).",
    )
    group.addoption(
        "--block-detect-stall-ms",
        dest="block_detect_stall_ms",
        default=None,
        metavar="N",
        help="Also report event-loop stalls longer than N ms (stall watchdog; at least "
        f"{_config.MIN_STALL_MS:g}, 0: off).",
    )
    group.addoption(
        "--block-detect-min-ms",
        dest="block_detect_min_ms",
        default=None,
        metavar="MS",
        help="Fail only on blocking calls that blocked the loop at least MS milliseconds "
        "(default 0: every blocking call). Shorter calls are still listed in the summary "
        "and the JSON report. In raise mode the call then runs and is judged afterwards.",
    )
    parser.addini("block_detect", "loopwarden mode: " + ", ".join(PLUGIN_MODES), default="")
    parser.addini(
        "block_detect_scope", "packages whose findings are kept (comma separated)", default=""
    )
    parser.addini(
        "block_detect_report", "write the findings to this .json or .html file", default=""
    )
    parser.addini("block_detect_stall_ms", "stall watchdog threshold in ms", default="")
    parser.addini(
        "block_detect_min_ms",
        "fail only on blocking calls that blocked at least this many ms (default 0)",
        default="",
    )


def split_bare_flag(args: list[str]) -> None:
    """Let ``--block-detect tests/`` mean the bare flag followed by a path.

    ``nargs="?"`` would otherwise take ``tests/`` as the mode. A following
    word that is a valid mode, or not an existing path, stays the value (a
    typo still gets the "valid modes" error).
    """
    for index, arg in enumerate(args[:-1]):
        if arg != _FLAG:
            continue
        following = args[index + 1]
        if following in PLUGIN_MODES or following.startswith("-"):
            continue
        if Path(following.split("::", 1)[0]).exists():
            args[index] = f"{_FLAG}=fail"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The plugin's resolved settings, with where each came from (for the header)."""

    mode: str = "off"
    mode_source: str = "default"
    scope: tuple[str, ...] = ()
    scope_source: str = "default"
    report: Path | None = None
    stall_ms: float | None = None
    stall_source: str = "default"
    #: ``--block-detect-min-ms``: shorter blocking calls fail no test (0: every call does).
    min_ms: float = 0.0
    min_ms_source: str = "default"
    #: ``[tool.loopwarden]``, validated by the shared reader (empty without one).
    project: _config.Settings = dataclasses.field(default_factory=_config.Settings)
    #: The pyproject.toml the table came from, if any.
    pyproject: Path | None = None
    #: Allowances from ``LOOPWARDEN_ALLOW`` (they add up with the project's).
    env_allow: tuple[Allowance, ...] = ()

    @property
    def allowances(self) -> tuple[Allowance, ...]:
        """Every allowance from configuration: ``[tool.loopwarden]``, then ``LOOPWARDEN_ALLOW``."""
        return (*self.project.allow, *self.env_allow)

    @property
    def enabled(self) -> bool:
        """True unless the mode is ``off``."""
        return self.mode != "off"

    def header(self) -> list[str]:
        """Lines for pytest's report header."""
        line = f"loopwarden: --block-detect={self.mode} (from {self.mode_source})"
        if self.scope:
            line += f", scope {','.join(self.scope)} (from {self.scope_source})"
        if self.report is not None:
            line += f", JSON report {self.report}"
        lines = [line]
        if self.stall_ms is not None:
            lines.append(
                f"loopwarden: stall watchdog {self.stall_ms:g} ms (from {self.stall_source})"
            )
        if self.min_ms:
            line = (
                f"loopwarden: only calls that blocked >= {self.min_ms:g} ms fail a test "
                f"(from {self.min_ms_source})"
            )
            if self.mode == "raise":
                line += "; raise mode runs each call and judges it afterwards"
            lines.append(line)
        project = self.project
        if project.allow or project.rules:
            lines.append(
                f"loopwarden: {len(project.allow)} allowance(s), {len(project.rules)} rule(s) "
                f"from {self.pyproject}"
            )
        if self.env_allow:
            lines.append(f"loopwarden: {len(self.env_allow)} allowance(s) from {_config.ENV_ALLOW}")
        return lines

    def to_dict(self) -> dict[str, object]:
        """The settings for the JSON report."""
        return {
            "mode": self.mode,
            "scope": list(self.scope),
            "stall_ms": self.stall_ms,
            "min_ms": self.min_ms,
            "pyproject": str(self.pyproject) if self.pyproject else None,
        }


def warden_mode(mode: str) -> str:
    """The core warden mode behind a plugin mode (``fail`` records, then fails the phase)."""
    return "record" if mode == "fail" else mode


def warden_mode_for(mode: str, min_ms: float) -> str:
    """The core warden mode for a plugin mode and duration threshold.

    With a threshold, ``raise`` cannot raise at the call: the duration is only
    known once the call has run. The call then runs (record mode) and the test
    phase fails afterwards, like ``fail``.
    """
    if min_ms > 0 and mode == "raise":
        return "record"
    return warden_mode(mode)


def resolve_settings(config: pytest.Config) -> Settings:
    """Resolve the settings; a bad value raises :class:`pytest.UsageError`.

    With the plugin off on the command line nothing else is read. Otherwise
    pyproject.toml is read through :mod:`loopwarden.config`, which loads no
    patching code, so a project that leaves the plugin off pays next to nothing.
    """
    try:
        return _resolve(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _resolve(config: pytest.Config) -> Settings:
    cli_mode = config.getoption("block_detect")
    ini_mode = str(config.getini("block_detect")).strip()
    if cli_mode is not None:
        mode, mode_source = cli_mode, "command line"
    elif ini_mode:
        mode, mode_source = ini_mode, "ini option block_detect"
    else:
        mode, mode_source = "", "default"
    project = _config.Settings()
    pyproject: Path | None = None
    if not mode or mode != "off":
        # Read pyproject only when it can matter: off on the command line costs nothing.
        pyproject = _pyproject(config)
        if pyproject is not None:
            project = _config.load_pyproject_file(pyproject)
        if not mode and project.mode:
            mode, mode_source = project.mode, f"{pyproject} [tool.loopwarden] mode"
    mode = (mode or "off").strip().lower()
    if mode not in PLUGIN_MODES:
        raise pytest.UsageError(
            f"invalid --block-detect mode {mode!r} (from {mode_source})"
            f"{did_you_mean(mode, PLUGIN_MODES)}; valid modes: {', '.join(PLUGIN_MODES)}"
        )
    if mode == "off":
        return Settings(mode_source=mode_source)
    scope, scope_source = _pick(config, "block_detect_scope", "command line")
    report, report_source = _pick(config, "block_detect_report", "command line")
    if report:
        try:
            _config.parse_report_path(report, where=f"--block-detect-report (from {report_source})")
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    stall, stall_source = _pick(config, "block_detect_stall_ms", "command line")
    if stall:
        stall_ms = _stall_ms(stall, stall_source)
    else:
        stall_ms = project.watchdog_ms
        if stall_ms is not None:
            stall_source = f"{pyproject} [tool.loopwarden] stall_ms"
    min_text, min_ms_source = _pick(config, "block_detect_min_ms", "command line")
    if min_text:
        where = "--block-detect-min-ms" if min_ms_source == "command line" else min_ms_source
        min_ms = _config.parse_min_ms(min_text, where=where)
    elif project.min_ms is not None:
        min_ms, min_ms_source = project.min_ms, f"{pyproject} [tool.loopwarden] min_ms"
    else:
        min_ms = 0.0
    return Settings(
        mode=mode,
        mode_source=mode_source,
        scope=_scope(scope),
        scope_source=scope_source,
        report=Path(report).absolute() if report else None,
        stall_ms=stall_ms,
        stall_source=stall_source,
        min_ms=min_ms,
        min_ms_source=min_ms_source,
        project=project,
        pyproject=pyproject,
        env_allow=_config.parse_env_allow(os.environ.get(_config.ENV_ALLOW, "")),
    )


def _pick(config: pytest.Config, name: str, cli_source: str) -> tuple[str, str]:
    value = config.getoption(name)
    if value is not None:
        return str(value), cli_source
    ini = str(config.getini(name)).strip()
    return (ini, f"ini option {name}") if ini else ("", "default")


def _scope(text: str) -> tuple[str, ...]:
    names = tuple(n for n in text.replace(",", " ").split() if n)
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise pytest.UsageError(
                f"invalid --block-detect-scope entry {name!r}: expected package names "
                "separated by commas, e.g. mypkg,otherpkg.sub"
            )
    return names


def _stall_ms(text: str, source: str) -> float | None:
    where = "--block-detect-stall-ms" if source == "command line" else source
    value = _config.parse_stall_ms(text, where=where)
    return value or None  # 0 switches the watchdog off


def _pyproject(config: pytest.Config) -> Path | None:
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return Path(inipath)
    candidate = Path(config.rootpath) / "pyproject.toml"
    return candidate if candidate.is_file() else None
