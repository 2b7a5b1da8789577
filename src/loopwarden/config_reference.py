"""The configuration reference, generated from the code (docs/configuration.md).

Every place that takes an option is read from the code itself: the pytest
plugin's options and ini names (through a real ``pytest`` parser), the
``loopwarden run`` arguments (the CLI's argparse parser), the keys of
``[tool.loopwarden]``, the ``LOOPWARDEN*`` variables and the keyword arguments
of :func:`loopwarden.guard`. :data:`SETTINGS` only says which of those are the
same setting and describes its values; an option found in the code but not
listed there still gets a row of its own (with its help text), so the page
cannot miss an option.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Iterable

from loopwarden import config

__all__ = ["SETTINGS", "Place", "SettingDoc", "collect_places", "render_options_table"]


@dataclasses.dataclass(frozen=True)
class SettingDoc:
    """One setting and its name in each place (``""``: it cannot be set there).

    Attributes:
        title: The row's name.
        code: Keyword argument of ``guard()``/``activate()``.
        pytest: ``dest`` of the pytest command-line option and name of its ini option.
        pyproject: Key in ``[tool.loopwarden]``.
        pyproject_in_pytest: Whether the pytest plugin reads that key.
        env: Environment variable.
        env_in_pytest: Whether the pytest plugin reads that variable.
        run: ``dest`` of the ``loopwarden run`` option.
        values: Accepted values and the default, in Markdown.
    """

    title: str
    values: str
    code: str = ""
    pytest: str = ""
    pyproject: str = ""
    pyproject_in_pytest: bool = True
    env: str = ""
    env_in_pytest: bool = False
    run: str = ""


#: Which names in the code are one setting, and what values it takes.
SETTINGS: tuple[SettingDoc, ...] = (
    SettingDoc(
        "Mode",
        code="mode",
        pytest="block_detect",
        pyproject="mode",
        env=config.ENV_MODE,
        run="mode",
        values="`raise`, `warn`, `record`, `off`; pytest and `[tool.loopwarden]` also take "
        "`fail` (outside pytest it records, and `loopwarden run` exits with 1 on findings). "
        "Default: `raise` in code; `off` in pytest (the bare flag means `fail`); `warn` for "
        "`loopwarden run`; an unset `LOOPWARDEN` leaves `activate_from_env()` off.",
    ),
    SettingDoc(
        "Stall watchdog threshold",
        code="stall_ms",
        pytest="block_detect_stall_ms",
        pyproject="stall_ms",
        env=config.ENV_STALL_MS,
        run="stall_ms",
        values=f"Milliseconds, at least {config.MIN_STALL_MS:g}; fractions are kept (`12.5`). "
        "`0` (or `None` in code) switches the watchdog off. Default: **off**: the "
        "[watchdog](watchdog.md) runs only when a threshold is given.",
    ),
    SettingDoc(
        "Duration threshold",
        pytest="block_detect_min_ms",
        pyproject="min_ms",
        values="Milliseconds, `0` or more; fractions are kept. A blocking call fails its test "
        "only if it blocked the loop at least this long; shorter calls are still listed in the "
        "summary and the JSON report. With a threshold, `raise` mode lets the call run and "
        "fails the phase afterwards (the duration is known only then). Calls of unknown "
        "duration (a certain deadlock) always count. Default: `0`, every blocking call fails. "
        "See [How long it blocked](reports.md#how-long-it-blocked).",
    ),
    SettingDoc(
        "Report file",
        pytest="block_detect_report",
        pyproject="report",
        pyproject_in_pytest=False,
        env=config.ENV_REPORT,
        run="report",
        values="A path ending in `.json` or `.html`, written at the end (for "
        "`activate_from_env()`: checked at start-up, written at exit, on SIGTERM and every "
        "minute while new findings come in, atomically; `{pid}` in the name becomes the "
        "process id, and a child process that inherits the variable writes "
        "`name.pid<N>.ext`). Default: none.",
    ),
    SettingDoc(
        "Report owner (set by loopwarden)",
        env=config.ENV_REPORT_OWNER,
        values="Set by loopwarden in the process that first uses `LOOPWARDEN_REPORT`: its "
        "pid. Child processes inherit it and write `name.pid<N>.ext` instead of the "
        "parent's file. Do not set it yourself.",
    ),
    SettingDoc(
        "Findings kept in full",
        code="max_findings",
        pyproject="max_findings",
        env=config.ENV_MAX_FINDINGS,
        values="A whole number >= 0: how many full findings (with stacks) a warden keeps "
        "in `Warden.findings`; later ones are only counted, exactly, per call site "
        "(`Warden.sites`, the reports' counts). Bounds memory in long runs. "
        "Default: 10000.",
    ),
    SettingDoc(
        "Allowances",
        code="allow",
        pyproject="allow",
        env=config.ENV_ALLOW,
        env_in_pytest=True,
        run="allow",
        values="`package.module` or `package.module:qualname` with a reason; see "
        "[Allowance syntax](#allowance-syntax). They add up from every place listed "
        "here, including under pytest. Default: the built-in allowances only.",
    ),
    SettingDoc(
        "Extra rules",
        code="rules",
        pyproject="rules",
        values="`[[tool.loopwarden.rules]]` tables with `target` (a function or method, "
        "never a class), `suggestion`, optional `family`, `condition`, `name`; in code "
        "`Rule` objects. They add up.",
    ),
    SettingDoc(
        "Scope",
        pytest="block_detect_scope",
        values="Comma-separated package names; a finding is kept when its stack passes "
        "through one of them (see [Scope](#scope)). Default: every finding.",
    ),
    SettingDoc(
        "Callback per finding",
        code="on_finding",
        values="A callable taking a `Finding`; an error in it is logged and the callback "
        "is disabled.",
    ),
    SettingDoc(
        "Fail on findings",
        run="fail_on_findings",
        values="Flag: exit with 1 when there were findings, whatever the mode.",
    ),
    SettingDoc("No summary", run="no_summary", values="Flag: no summary at the end."),
    SettingDoc(
        "Ignore configuration",
        run="no_config",
        values="Flag: ignore `[tool.loopwarden]` and the `LOOPWARDEN*` variables.",
    ),
    SettingDoc(
        "Pure Python",
        env=config.ENV_PURE_PYTHON,
        env_in_pytest=True,
        values="`1`: leave out the optional C extension that runs the lock rules' common "
        "paths and the registry's replay loops (see [Performance](performance.md)), in a "
        "process where it is set before "
        "loopwarden is imported; at install time, do not compile it. Findings are the same "
        "either way. Default: the C extension where it was built.",
    ),
)


@dataclasses.dataclass(frozen=True)
class Place:
    """An option as the code defines it in one place."""

    key: str
    label: str
    help: str = ""


def _pytest_places() -> tuple[dict[str, Place], dict[str, Place]]:
    """The plugin's command-line options and ini names, from a real pytest parser."""
    from _pytest.config.argparsing import Parser

    from pytest_loopwarden.options import add_options

    parser = Parser(_ispytest=True)
    add_options(parser)
    options: dict[str, Place] = {}
    for option in parser.getgroup("loopwarden").options:
        attrs = option.attrs()
        flag = option.names()[0]
        if attrs.get("nargs") == "?":
            flag += f"[={attrs.get('metavar') or 'VALUE'}]"
        elif attrs.get("action") not in ("store_true", "store_false"):
            flag += f"={attrs.get('metavar') or 'VALUE'}"
        options[option.dest] = Place(option.dest, f"`{flag}`", str(attrs.get("help") or ""))
    inis = {name: Place(name, f"`{name}`", str(spec[0])) for name, spec in parser._inidict.items()}
    return options, inis


def _run_places() -> dict[str, Place]:
    """The ``loopwarden run`` options, from the CLI's own parser."""
    from loopwarden.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = subparsers.choices["run"]
    places: dict[str, Place] = {}
    for action in run._actions:
        if not action.option_strings or action.dest in ("help", "module"):
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs != 0:
            flag += f" {action.metavar or action.dest.upper()}"
        places[action.dest] = Place(action.dest, f"`{flag}`", action.help or "")
    return places


def _code_places() -> dict[str, Place]:
    from loopwarden.warden import guard

    return {
        name: Place(name, f"`guard({name}=...)`")
        for name, parameter in inspect.signature(guard).parameters.items()
    }


def collect_places() -> dict[str, dict[str, Place]]:
    """Every option the code accepts, by place.

    Returns:
        ``{place: {key: Place}}`` for the places ``code``, ``pytest``, ``ini``,
        ``pyproject``, ``env`` and ``run``.
    """
    options, inis = _pytest_places()
    return {
        "code": _code_places(),
        "pytest": options,
        "ini": inis,
        "pyproject": {key: Place(key, f"`{key}`") for key in config.TABLE_KEYS},
        "env": {name: Place(name, f"`{name}`") for name in config.ENV_VARIABLES},
        "run": _run_places(),
    }


def _cell(text: str) -> str:
    # A pipe splits cells unless escaped; inside a code span the escape would show.
    parts = " ".join(text.split()).split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def render_options_table(settings: Iterable[SettingDoc] = SETTINGS) -> str:
    """The one table of every option: a row per setting, a column per place."""
    places = collect_places()
    used: dict[str, set[str]] = {place: set() for place in places}
    header = (
        "| Setting | Code | pytest command line | pytest ini | `[tool.loopwarden]` "
        "| Environment | `loopwarden run` | Values, default |"
    )
    lines = [header, "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(place: str, key: str, note: str = "") -> str:
        found = places[place].get(key) if key else None
        if found is None:
            return ""
        used[place].add(key)
        return found.label + note

    for doc in settings:
        row = [
            f"**{doc.title}**",
            cell("code", doc.code),
            cell("pytest", doc.pytest),
            cell("ini", doc.pytest),
            cell("pyproject", doc.pyproject, "" if doc.pyproject_in_pytest else " (not pytest)"),
            cell("env", doc.env, " (also pytest)" if doc.env_in_pytest else " (not pytest)"),
            cell("run", doc.run),
            doc.values,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    # Options in the code that SETTINGS does not describe yet still get a row.
    for place, column in (("pytest", 2), ("ini", 3), ("run", 6), ("code", 1)):
        for key, found in places[place].items():
            if key in used[place]:
                continue
            row = [f"**{key}**", "", "", "", "", "", "", _cell(found.help)]
            row[column] = found.label
            if place == "pytest" and key in places["ini"]:
                row[3] = places["ini"][key].label
                used["ini"].add(key)
            used[place].add(key)
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    for place, column in (("pyproject", 4), ("env", 5)):
        for key, found in places[place].items():
            if key not in used[place]:
                row = [f"**{key}**", "", "", "", "", "", "", ""]
                row[column] = found.label
                lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"
