"""Settings from ``[tool.loopwarden]``, the environment and the command line.

Precedence, highest first::

    command line  >  environment (LOOPWARDEN_*)  >  [tool.loopwarden]  >  defaults

Single values (``mode``, ``stall_ms``, ``report``, ``max_findings``) come from the highest
layer that sets them. Lists (``allow``, ``rules``) add up: an allowance in
pyproject.toml stays in force when the environment adds another.

pyproject.toml example::

    [tool.loopwarden]
    mode = "warn"            # raise | warn | record | off (| fail: pytest plugin)
    stall_ms = 150           # stall watchdog threshold; 0 switches it off
    min_ms = 5               # pytest plugin: fail only on calls that blocked >= 5 ms
    allow = [
        { target = "myapp.boot:load_settings", reason = "runs before the window shows" },
        "myapp.legacy:sync_export = exports are rare and the user waits for them",
    ]

    [[tool.loopwarden.rules]]
    target = "requests:get"
    suggestion = "Use httpx.AsyncClient or run it in `asyncio.to_thread`."
    family = "network"       # default "custom"

The file is the first ``pyproject.toml`` found in the start directory or
its parents; a file without a ``[tool.loopwarden]`` table gives no settings.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopwarden.allowances import Allowance, check_allowance_target, parse_allowance
from loopwarden.errors import ConfigError
from loopwarden.findings import FAMILIES
from loopwarden.modes import MODES
from loopwarden.rules import Rule
from loopwarden.sites import check_max_findings
from loopwarden.suggest import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_MODE",
    "ENV_ALLOW",
    "ENV_MODE",
    "ENV_REPORT",
    "ENV_STALL_MS",
    "ENV_VARIABLES",
    "MIN_STALL_MS",
    "MODE_VALUES",
    "PYPROJECT_MODE_VALUES",
    "REPORT_SUFFIXES",
    "TABLE_KEYS",
    "Settings",
    "find_pyproject",
    "check_rule_target",
    "load_pyproject_config",
    "load_pyproject_file",
    "parse_min_ms",
    "parse_mode",
    "parse_env_allow",
    "parse_report_path",
    "parse_stall_ms",
    "read_pyproject_table",
    "settings_from_env",
    "settings_from_table",
]

#: Every value ``mode`` accepts: the warden modes plus ``"off"``.
MODE_VALUES: tuple[str, ...] = (*MODES, "off")
#: ``mode`` in ``[tool.loopwarden]`` may also be the pytest plugin's ``"fail"``
#: (the table is shared). Outside pytest it means ``record``, and
#: ``loopwarden run`` exits with 1 when there were findings.
PYPROJECT_MODE_VALUES: tuple[str, ...] = (*MODE_VALUES, "fail")
#: The mode used when no layer sets one.
DEFAULT_MODE = "warn"
#: The shortest stall threshold accepted anywhere (``stall_ms``, ``LOOPWARDEN_STALL_MS``,
#: ``--stall-ms``, ``--block-detect-stall-ms``, ``guard(stall_ms=...)``), in milliseconds.
#: Below it the watchdog would wake up constantly and report scheduling noise as stalls.
MIN_STALL_MS = 10.0
#: File suffixes a report path may have.
REPORT_SUFFIXES: tuple[str, ...] = (".json", ".html")

ENV_MODE = "LOOPWARDEN"
ENV_STALL_MS = "LOOPWARDEN_STALL_MS"
ENV_REPORT = "LOOPWARDEN_REPORT"
ENV_ALLOW = "LOOPWARDEN_ALLOW"
ENV_MAX_FINDINGS = "LOOPWARDEN_MAX_FINDINGS"
#: Leave the C extension out (read at import, by loopwarden.native, and at install).
ENV_PURE_PYTHON = "LOOPWARDEN_PURE_PYTHON"
#: Set by loopwarden, not by you: the pid of the process that claimed LOOPWARDEN_REPORT.
ENV_REPORT_OWNER = "LOOPWARDEN_REPORT_OWNER"

#: Every variable loopwarden reads (the generated configuration reference lists them).
ENV_VARIABLES: tuple[str, ...] = (
    ENV_MODE,
    ENV_STALL_MS,
    ENV_REPORT,
    ENV_ALLOW,
    ENV_MAX_FINDINGS,
    ENV_REPORT_OWNER,
    ENV_PURE_PYTHON,
)

#: The keys ``[tool.loopwarden]`` accepts.
TABLE_KEYS: tuple[str, ...] = (
    "mode",
    "stall_ms",
    "min_ms",
    "allow",
    "rules",
    "report",
    "max_findings",
)
_RULE_KEYS = ("target", "suggestion", "family", "condition", "name")
_ALLOW_KEYS = ("target", "reason", "primitives")


@dataclasses.dataclass(frozen=True)
class Settings:
    """One layer of settings; ``None`` means "not set here".

    Attributes:
        mode: ``"raise"``, ``"warn"``, ``"record"`` or ``"off"``.
        stall_ms: Stall watchdog threshold in milliseconds; ``0`` switches
            the watchdog off.
        report: Path of the report to write at the end (``.json`` or ``.html``).
        max_findings: Full findings a warden keeps (later ones are only counted).
        min_ms: pytest plugin: a blocking call fails its test only if it
            blocked at least this many milliseconds (``0``: every call).
        allow: Allowances (``"package.module:qualname"`` with a reason).
        rules: Extra rules, like :func:`loopwarden.mark_blocking`.
        source: Where the layer came from, for messages.
    """

    mode: str | None = None
    stall_ms: float | None = None
    report: str | None = None
    max_findings: int | None = None
    min_ms: float | None = None
    allow: tuple[Allowance, ...] = ()
    rules: tuple[Rule, ...] = ()
    source: str = ""

    def over(self, lower: Settings) -> Settings:
        """This layer on top of ``lower``: set values win, lists add up."""
        return Settings(
            mode=self.mode if self.mode is not None else lower.mode,
            stall_ms=self.stall_ms if self.stall_ms is not None else lower.stall_ms,
            report=self.report if self.report is not None else lower.report,
            max_findings=(
                self.max_findings if self.max_findings is not None else lower.max_findings
            ),
            min_ms=self.min_ms if self.min_ms is not None else lower.min_ms,
            allow=(*lower.allow, *self.allow),
            rules=(*lower.rules, *self.rules),
            source=" > ".join(s for s in (self.source, lower.source) if s),
        )

    @property
    def effective_mode(self) -> str:
        """``mode``, or :data:`DEFAULT_MODE` when no layer set it."""
        return self.mode if self.mode is not None else DEFAULT_MODE

    @property
    def warden_mode(self) -> str:
        """The mode for ``guard()``/``activate()``: the pytest-only ``fail`` records."""
        mode = self.effective_mode
        return "record" if mode == "fail" else mode

    @property
    def watchdog_ms(self) -> float | None:
        """The stall threshold to pass to ``activate(stall_ms=...)``, or None."""
        return self.stall_ms if self.stall_ms else None

    @classmethod
    def merge(cls, *layers: Settings) -> Settings:
        """Merge layers given highest precedence first (CLI, env, pyproject)."""
        result = cls()
        for layer in reversed(layers):
            result = layer.over(result)
        return result


# -- single values ----------------------------------------------------------------


def parse_mode(value: object, *, where: str = "mode", valid: tuple[str, ...] = MODE_VALUES) -> str:
    """Validate a mode (case-insensitive for strings) against ``valid``.

    Raises:
        ConfigError: naming the valid values.
    """
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in valid:
        hint = did_you_mean(text, valid) if isinstance(text, str) else ""
        raise ConfigError(f"invalid {where} {value!r}{hint}; valid values: {', '.join(valid)}")
    return str(text)


def _milliseconds(value: object) -> float | None:
    """``value`` as a float (a number, or a string holding one), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def parse_stall_ms(value: object, *, where: str = "stall_ms") -> float:
    """Validate a stall threshold: ``0`` (off) or a number of milliseconds >= :data:`MIN_STALL_MS`.

    Fractions are kept (``12.5`` stays 12.5 ms, nothing is rounded).

    Raises:
        ConfigError: naming the valid values.
    """
    number = _milliseconds(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ConfigError(
            f"invalid {where} {value!r}; valid values: a number of milliseconds >= "
            f"{MIN_STALL_MS:g} (e.g. 100), or 0 to switch the stall watchdog off"
        )
    if 0 < number < MIN_STALL_MS:
        raise ConfigError(
            f"invalid {where} {value!r}: the stall threshold must be at least "
            f"{MIN_STALL_MS:g} ms (shorter pauses are normal scheduling noise and would "
            "make the watchdog spin); use 0 to switch it off"
        )
    return number


def parse_min_ms(value: object, *, where: str = "min_ms") -> float:
    """Validate a duration threshold: a number of milliseconds >= 0 (0: every call counts).

    Raises:
        ConfigError: naming the valid values.
    """
    number = _milliseconds(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ConfigError(
            f"invalid {where} {value!r}; valid values: a number of milliseconds >= 0 "
            "(e.g. 5: only calls that blocked 5 ms or longer fail a test; 0: every call)"
        )
    return number


def parse_report_path(value: object, *, where: str = "report") -> str:
    """Validate a report path: it must end in ``.json`` or ``.html``.

    Raises:
        ConfigError: naming the valid suffixes.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"invalid {where} {value!r}; expected a path ending in .json or .html")
    path = value.strip()
    if Path(path).suffix.lower() not in REPORT_SUFFIXES:
        raise ConfigError(
            f"invalid {where} {value!r}; the file name must end in {' or '.join(REPORT_SUFFIXES)}"
        )
    return path


# -- lists ------------------------------------------------------------------------


def _parse_allow_item(item: object, where: str) -> Allowance:
    if isinstance(item, str):
        spec, sep, reason = item.partition("=")
        if not sep or not reason.strip():
            raise ConfigError(
                f"{where}: allowance {item!r} needs a reason; write "
                "'package.module:qualname = why blocking is fine there' or "
                '{ target = "package.module:qualname", reason = "..." }'
            )
        return check_allowance_target(parse_allowance(spec.strip(), reason.strip()), where=where)
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - set(_ALLOW_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown allowance key(s) {', '.join(unknown)}; "
                f"valid keys: {', '.join(_ALLOW_KEYS)}"
            )
        primitives = item.get("primitives", ())
        if isinstance(primitives, str):
            primitives = (primitives,)
        if not isinstance(primitives, (list, tuple)) or not all(
            isinstance(p, str) for p in primitives
        ):
            raise ConfigError(f"{where}: 'primitives' must be a list of primitive or family names")
        return check_allowance_target(
            parse_allowance(item.get("target", ""), item.get("reason", ""), primitives),
            where=where,
        )
    raise ConfigError(
        f"{where}: allowance {item!r} must be a table "
        '{ target = "package.module:qualname", reason = "..." } or a string '
        "'package.module:qualname = reason'"
    )


def parse_allow(value: object, *, where: str = "allow") -> tuple[Allowance, ...]:
    """Parse ``allow``: a list of tables or strings, or a table ``spec = reason``.

    Raises:
        ConfigError: for a malformed entry or a missing reason.
    """
    if isinstance(value, Mapping):
        return tuple(
            _parse_allow_item(f"{spec} = {reason}", where) for spec, reason in value.items()
        )
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be a list of allowances, got {value!r}")
    return tuple(_parse_allow_item(item, where) for item in value)


def _is_dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _imported_or_stdlib(module_name: str) -> Any:
    """The module if it is already imported or part of the standard library, else None.

    The user's own modules are never imported just to validate the configuration:
    importing runs their code, possibly before the patches are in place.
    """
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    if module_name.partition(".")[0] not in getattr(sys, "stdlib_module_names", ()):
        return None
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def check_rule_target(target: object, *, where: str = "rule") -> str:
    """Validate a rule target: ``"package.module:function"`` or ``"package.module:Class.method"``.

    When the module is already imported (or is in the standard library), the
    target is looked up too: it must exist, and it must not be a class (patching
    a class with a function breaks every ``class X(Base)`` and ``isinstance``).

    Raises:
        ConfigError: naming what is wrong and what to write instead.
    """
    shape = (
        f"{where}: rule target {target!r} must look like 'package.module:function' "
        "or 'package.module:Class.method'"
    )
    if not isinstance(target, str):
        raise ConfigError(shape)
    module_name, sep, path = target.partition(":")
    if not sep or not _is_dotted_name(module_name) or not _is_dotted_name(path):
        raise ConfigError(shape)
    module = _imported_or_stdlib(module_name)
    if module is None:
        return target
    owner: Any = module
    for part in path.split("."):
        if not hasattr(owner, part):
            raise ConfigError(
                f"{where}: rule target {target!r}: {owner.__name__!r} has no attribute "
                f"{part!r}{did_you_mean(part, dir(owner))}"
            )
        owner = getattr(owner, part)
    if isinstance(owner, type):
        methods = [n for n, v in vars(owner).items() if callable(v) and not n.startswith("_")]
        example = f"{target}.{methods[0]}" if methods else f"{target}.method"
        raise ConfigError(
            f"{where}: rule target {target!r} is a class; name one of its methods instead "
            f"(e.g. {example!r}): replacing the class itself would break subclasses and "
            "isinstance() checks"
        )
    return target


def parse_rules(value: object, *, where: str = "rules") -> tuple[Rule, ...]:
    """Parse ``rules``: a list of tables with target, suggestion and family.

    Raises:
        ConfigError: naming the missing or unknown keys and the valid families.
    """
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be a list of tables ([[tool.loopwarden.rules]])")
    rules: list[Rule] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: each rule must be a table, got {item!r}")
        unknown = sorted(set(item) - set(_RULE_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown rule key(s) {', '.join(unknown)}; "
                f"valid keys: {', '.join(_RULE_KEYS)}"
            )
        target = check_rule_target(item.get("target"), where=where)
        suggestion = item.get("suggestion")
        if not isinstance(suggestion, str) or not suggestion.strip():
            raise ConfigError(f"{where}: rule {target!r} needs a suggestion (what to use instead)")
        family = item.get("family", "custom")
        if family not in FAMILIES:
            raise ConfigError(
                f"{where}: rule {target!r} has invalid family {family!r}"
                f"{did_you_mean(str(family), FAMILIES)}; "
                f"valid families: {', '.join(FAMILIES)}"
            )
        condition = item.get("condition", "always")
        name = item.get("name", "")
        rules.append(
            Rule(
                target=target,
                family=family,
                suggestion=suggestion,
                condition=str(condition),
                name=str(name),
            )
        )
    return tuple(rules)


# -- layers -----------------------------------------------------------------------


def settings_from_table(table: Mapping[str, Any], *, source: str = "[tool.loopwarden]") -> Settings:
    """Validate a ``[tool.loopwarden]`` table (already parsed from TOML).

    Raises:
        ConfigError: for unknown keys or invalid values, naming the valid ones.
    """
    unknown = sorted(set(table) - set(TABLE_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(TABLE_KEYS)}"
        )
    return Settings(
        mode=(
            parse_mode(table["mode"], where=f"{source} mode", valid=PYPROJECT_MODE_VALUES)
            if "mode" in table
            else None
        ),
        stall_ms=(
            parse_stall_ms(table["stall_ms"], where=f"{source} stall_ms")
            if "stall_ms" in table
            else None
        ),
        report=(
            parse_report_path(table["report"], where=f"{source} report")
            if "report" in table
            else None
        ),
        max_findings=(
            check_max_findings(table["max_findings"], where=f"{source} max_findings")
            if "max_findings" in table
            else None
        ),
        min_ms=(
            parse_min_ms(table["min_ms"], where=f"{source} min_ms") if "min_ms" in table else None
        ),
        allow=parse_allow(table.get("allow", ()), where=f"{source} allow"),
        rules=parse_rules(table.get("rules", ()), where=f"{source} rules"),
        source=source,
    )


def find_pyproject(start_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first ``pyproject.toml`` in ``start_dir`` (default: CWD) or its parents."""
    directory = Path(start_dir if start_dir is not None else os.getcwd()).resolve()
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject_table(path: str | os.PathLike[str]) -> Mapping[str, Any] | None:
    """The raw ``[tool.loopwarden]`` table of one pyproject.toml, or None if it has none.

    Only the standard library is used, so the pytest plugin can call it while
    it is off without loading loopwarden's core.

    Raises:
        ConfigError: one line naming the file and the problem (unreadable, not
            UTF-8, not TOML, or ``tool``/``tool.loopwarden`` not a table).
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read {os.fspath(path)}: it is not valid UTF-8 (byte {exc.start}); "
            "TOML files must be UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: invalid TOML: {exc}") from exc
    tool = document.get("tool", {})
    if not isinstance(tool, Mapping):
        raise ConfigError(
            f"{os.fspath(path)}: 'tool' must be a table ([tool.loopwarden]), got {tool!r}"
        )
    table = tool.get("loopwarden")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"{os.fspath(path)}: 'tool.loopwarden' must be a table ([tool.loopwarden]), "
            f"got {table!r}"
        )
    return table


def load_pyproject_file(path: str | os.PathLike[str]) -> Settings:
    """Read and validate ``[tool.loopwarden]`` from one pyproject.toml file.

    Returns:
        The settings found; empty :class:`Settings` when the file has no
        ``[tool.loopwarden]`` table.

    Raises:
        ConfigError: if the file cannot be read or the table has bad values.
    """
    table = read_pyproject_table(path)
    if table is None:
        return Settings()
    return settings_from_table(table, source=f"{os.fspath(path)} [tool.loopwarden]")


def load_pyproject_config(start_dir: str | os.PathLike[str] | None = None) -> Settings:
    """Read ``[tool.loopwarden]`` from the nearest pyproject.toml.

    The one reader used by the CLI, :func:`loopwarden.activate_from_env` and the
    pytest plugin, so all three read the same table the same way.

    Args:
        start_dir: Where to start looking (default: the current directory).

    Returns:
        The settings found; empty :class:`Settings` when there is no file or
        no ``[tool.loopwarden]`` table.

    Raises:
        ConfigError: if the file is not valid TOML or the table has bad values.
    """
    path = find_pyproject(start_dir)
    return Settings() if path is None else load_pyproject_file(path)


def parse_env_allow(text: str) -> tuple[Allowance, ...]:
    """Parse ``LOOPWARDEN_ALLOW``: comma-separated ``package.module[:qualname][=reason]``.

    Without ``=reason`` the reason recorded is "listed in LOOPWARDEN_ALLOW".

    Raises:
        ConfigError: for an entry that is not a module or qualified name.
    """
    allowances = []
    for item in text.split(","):
        spec, sep, reason = item.partition("=")
        if not spec.strip():
            if item.strip():
                raise ConfigError(f"{ENV_ALLOW}: entry {item.strip()!r} has no target")
            continue
        if sep and not reason.strip():
            raise ConfigError(f"{ENV_ALLOW}: entry {item.strip()!r} has an empty reason after '='")
        try:
            allowances.append(
                parse_allowance(spec.strip(), reason.strip() or f"listed in {ENV_ALLOW}")
            )
        except ConfigError as exc:
            raise ConfigError(f"{ENV_ALLOW}: {exc}") from None
    return tuple(allowances)


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``LOOPWARDEN``, ``LOOPWARDEN_STALL_MS``, ``LOOPWARDEN_REPORT``, ``LOOPWARDEN_ALLOW``.

    Empty variables count as unset. ``LOOPWARDEN_ALLOW`` is a comma-separated
    list of ``package.module:qualname``, each optionally followed by ``=reason``
    (see :func:`parse_env_allow`).

    Raises:
        ConfigError: for an invalid value, naming the valid values.
    """
    env = os.environ if environ is None else environ
    mode = env.get(ENV_MODE, "").strip()
    stall = env.get(ENV_STALL_MS, "").strip()
    report = env.get(ENV_REPORT, "").strip()
    allow_text = env.get(ENV_ALLOW, "").strip()
    allow = parse_env_allow(allow_text)
    max_findings = env.get(ENV_MAX_FINDINGS, "").strip()
    return Settings(
        mode=parse_mode(mode, where=ENV_MODE) if mode else None,
        stall_ms=parse_stall_ms(stall, where=ENV_STALL_MS) if stall else None,
        report=parse_report_path(report, where=ENV_REPORT) if report else None,
        max_findings=(
            check_max_findings(max_findings, where=ENV_MAX_FINDINGS) if max_findings else None
        ),
        allow=allow,
        source="environment",
    )
