"""The ``loopwarden`` command line (``python -m loopwarden``).

Commands::

    loopwarden run [options] script.py [args...]     run a script under detection
    loopwarden run [options] -m package.module [args...]
    loopwarden demo                                  the bundled PySide6 + qasync demo
    loopwarden report findings.json -o report.html   convert a JSON report
    loopwarden rules [--format markdown]             the rules reference

Exit codes:

* ``0``: success (for ``run``: the target exited with 0 and no failure condition);
* ``1``: ``run`` saw findings in ``raise`` mode, with ``--fail-on-findings`` or
  with ``mode = "fail"`` from ``[tool.loopwarden]`` (the pytest plugin's mode)
  (and the target itself exited with 0), or the target raised an exception;
* ``2``: usage or configuration error (bad option, bad pyproject value,
  missing script or module, unreadable report);
* otherwise: ``run`` returns the target's own non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import runpy
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO

from loopwarden._version import __version__
from loopwarden.config import (
    ENV_REPORT,
    MODE_VALUES,
    Settings,
    load_pyproject_config,
    parse_allow,
    parse_mode,
    parse_report_path,
    parse_stall_ms,
    settings_from_env,
)
from loopwarden.env import warden_options
from loopwarden.errors import ConfigError
from loopwarden.findings import FAMILIES
from loopwarden.report import (
    FindingCollector,
    load_report,
    merge_collectors,
    print_summary,
    write_report,
)
from loopwarden.report.files import check_writable
from loopwarden.warden import guard

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

_EPILOG = """\
exit codes:
  0  success
  1  run: findings in raise mode or with --fail-on-findings (or mode "fail" from
     pyproject.toml), or the target raised
  2  usage or configuration error
  N  run: the target's own non-zero exit code

settings: command line > environment (LOOPWARDEN, LOOPWARDEN_STALL_MS,
LOOPWARDEN_REPORT, LOOPWARDEN_ALLOW) > [tool.loopwarden] in pyproject.toml > defaults
"""


class _UsageError(Exception):
    """A mistake on the command line: message for stderr, exit code 2."""


# -- argument types: argparse turns ValueError-free failures into clean usage errors --


def _mode_arg(text: str) -> str:
    try:
        return parse_mode(text, where="--mode")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _stall_arg(text: str) -> float:
    try:
        return parse_stall_ms(text, where="--stall-ms")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report_arg(text: str) -> str:
    try:
        return parse_report_path(text, where="report path")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- the parser -----------------------------------------------------------------------


def _add_detection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        type=_mode_arg,
        metavar="MODE",
        help=f"what a finding does: {', '.join(MODE_VALUES)} (default: from the "
        "environment or pyproject.toml, else warn)",
    )
    parser.add_argument(
        "--stall-ms",
        type=_stall_arg,
        metavar="N",
        help="report event-loop stalls longer than N ms (stall watchdog; 0: off)",
    )
    parser.add_argument(
        "--report",
        type=_report_arg,
        metavar="PATH",
        help="write a report at the end: PATH.html (for people) or PATH.json (for tools)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="SPEC",
        help="accept blocking inside package.module:qualname (repeatable); "
        "write SPEC=REASON to record why",
    )
    parser.add_argument(
        "--fail-on-findings",
        action="store_true",
        help="exit with 1 if there were findings, whatever the mode (for CI)",
    )
    parser.add_argument(
        "--no-summary", action="store_true", help="do not print the summary at the end"
    )
    parser.add_argument(
        "--no-config",
        action="store_true",
        help="ignore [tool.loopwarden] in pyproject.toml and the LOOPWARDEN* variables",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="loopwarden",
        description="Catch blocking calls on the event-loop thread of Qt + asyncio apps.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"loopwarden {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run a script or module under detection, then summarise",
        description="Run a Python script (or, with -m, a module) as __main__ under "
        "detection, like `python -m cProfile`; then print a summary of the findings and "
        "write the report.",
        usage="loopwarden run [options] (script.py | -m package.module) [args ...]",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_detection_options(run)
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module, like python -m")
    run.add_argument("target", nargs="?", help="the script to run (or omit it and use -m)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the target")

    demo = commands.add_parser(
        "demo",
        help="run the bundled PySide6 + qasync demo app (offscreen, a few seconds)",
        description="Run a small PySide6 + qasync app that makes common mistakes on the "
        "GUI thread and does the same work correctly off it; print what loopwarden found "
        "and write an HTML report.",
    )
    demo.add_argument(
        "--report",
        type=_report_arg,
        default="loopwarden-report.html",
        metavar="PATH",
        help="where to write the report (default: loopwarden-report.html)",
    )
    demo.add_argument(
        "--json", type=_report_arg, metavar="PATH", help="also write the findings as JSON here"
    )
    demo.add_argument(
        "--stall-ms",
        type=_stall_arg,
        default=200.0,
        metavar="N",
        help="stall watchdog threshold in ms (default: 200, under the demo's 300 ms stall)",
    )

    report = commands.add_parser(
        "report",
        help="convert JSON reports to HTML (or print their summary)",
        description="Read JSON reports (from `run --report x.json`, LOOPWARDEN_REPORT or "
        "the pytest plugin) and write them as HTML or JSON; several are merged into one "
        "(e.g. the per-process files of an app and its children); without -o, print the "
        "summary.",
    )
    report.add_argument("input", nargs="+", help="the JSON report(s) to read")
    report.add_argument(
        "-o", "--output", type=_report_arg, metavar="PATH", help="write PATH.html or PATH.json"
    )

    rules = commands.add_parser(
        "rules",
        help="print the rules reference",
        description="List every detection rule: primitive, family, when it is a finding, "
        "and what to use instead. Includes extra rules from [tool.loopwarden].",
    )
    rules.add_argument(
        "--format", choices=("text", "markdown"), default="text", help="output format"
    )
    rules.add_argument(
        "--family", choices=FAMILIES, action="append", help="only this family (repeatable)"
    )
    return parser


# -- run --------------------------------------------------------------------------------


@dataclass
class _Target:
    module: str | None
    script: str | None
    args: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        head = f"-m {self.module}" if self.module else str(self.script)
        return " ".join([head, *self.args])


def _split_run_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``run``'s own options from the target and its arguments.

    Everything from the script name (or from ``-m MODULE``) on belongs to the
    target, even if it looks like an option of ours.
    """
    takes_value = {"--mode", "--stall-ms", "--report", "--allow"}
    own: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "-m":
            return [*own, *argv[i : i + 2]], list(argv[i + 2 :])
        if token.startswith("-m") and not token.startswith("--"):
            return [*own, "-m", token[2:]], list(argv[i + 1 :])
        if token == "--":
            return own, list(argv[i + 1 :])
        if not token.startswith("-"):
            return own, list(argv[i:])
        own.append(token)
        if token in takes_value and i + 1 < len(argv):
            own.append(argv[i + 1])
            i += 1
        i += 1
    return own, []


def _allow_from_cli(specs: Sequence[str]) -> Settings:
    items = [spec if "=" in spec else f"{spec} = given with --allow" for spec in specs]
    return Settings(allow=parse_allow(items, where="--allow"), source="command line")


def _settings_for_run(args: argparse.Namespace) -> Settings:
    cli = Settings(
        mode=args.mode, stall_ms=args.stall_ms, report=args.report, source="command line"
    ).over(_allow_from_cli(args.allow))
    if args.no_config:
        return cli
    return Settings.merge(cli, settings_from_env(), load_pyproject_config())


def _exit_code(code: object, stderr: TextIO) -> int:
    # What the interpreter does with SystemExit's argument.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1


def _user_traceback(exc: BaseException) -> TracebackType | None:
    # Hide our own and runpy's frames: the traceback starts in the target.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") in (__name__, "runpy"):
        tb = tb.tb_next
    return tb


@contextlib.contextmanager
def _target_sys_path(target: _Target) -> Iterator[None]:
    """Set ``sys.path[0]`` as ``python`` would for the target, then restore it.

    ``python -m`` puts the current directory first, ``python app.py`` the
    script's directory. The ``loopwarden`` console script would otherwise
    leave its own bin directory there.
    """
    first = os.getcwd() if target.module else os.path.dirname(os.path.abspath(str(target.script)))
    saved = sys.path[:1]
    sys.path[0:1] = [first]
    try:
        yield
    finally:
        if sys.path[:1] == [first]:
            sys.path[0:1] = saved


def _run_target(target: _Target, stderr: TextIO) -> int:
    saved_argv = sys.argv[:]
    try:
        if target.module:
            sys.argv = [target.module, *target.args]
            runpy.run_module(target.module, run_name="__main__", alter_sys=True)
        else:
            sys.argv = [str(target.script), *target.args]
            # run_path also runs directories and zip files with a __main__.py.
            runpy.run_path(os.path.abspath(str(target.script)), run_name="__main__")
        return EXIT_OK
    except SystemExit as exc:
        return _exit_code(exc.code, stderr)
    except BaseException as exc:  # noqa: BLE001 - report it as the interpreter would
        traceback.print_exception(type(exc), exc, _user_traceback(exc), file=stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        sys.argv = saved_argv


def _check_target(target: _Target) -> None:
    if target.module:
        try:
            found = importlib.util.find_spec(target.module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise _UsageError(f"no module named {target.module!r} (looked from {os.getcwd()})")
    elif not os.path.exists(str(target.script)):
        raise _UsageError(f"cannot open script {target.script!r}: no such file")


def _cmd_run(args: argparse.Namespace, target: _Target, stdout: TextIO, stderr: TextIO) -> int:
    del stdout  # the target owns stdout; our output goes to stderr
    with _target_sys_path(target):
        return _run_with_detection(args, target, stderr)


def _run_with_detection(args: argparse.Namespace, target: _Target, stderr: TextIO) -> int:
    _check_target(target)
    settings = _settings_for_run(args)
    # Resolve now: the target may change the working directory.
    report_path = os.path.abspath(settings.report) if settings.report else None
    if report_path:
        # Now, not after a long run: an unusable path must not be found at the end.
        problem = check_writable(report_path)
        if problem is not None:
            raise _UsageError(f"cannot write the report {settings.report!r}: {problem}")
    if report_path and os.environ.get(ENV_REPORT):
        # Child processes that inherit LOOPWARDEN_REPORT write their own files.
        from loopwarden import env_report

        env_report.claim(None)
    mode = settings.effective_mode
    collector = FindingCollector()
    collector.meta.update(
        command=f"loopwarden run {target.label}", mode=mode, stall_ms=settings.watchdog_ms
    )
    if mode == "off":
        code = _run_target(target, stderr)
    else:
        options = warden_options(settings)
        options["on_finding"] = collector
        with guard(**options):
            code = _run_target(target, stderr)
    collector.finish()
    if not args.no_summary and mode != "off":
        # warn mode printed each finding as a warning already: only count them.
        print_summary(collector, stderr, brief=mode == "warn")
    if report_path:
        try:
            written = write_report(collector, report_path)
            print(f"loopwarden: report written to {written}", file=stderr)
        except (OSError, ConfigError) as exc:
            print(f"loopwarden: could not write report {report_path!r}: {exc}", file=stderr)
    # "fail" can come from [tool.loopwarden] (the pytest plugin's mode): here
    # it records, and findings fail the run.
    fails = mode in ("raise", "fail") or args.fail_on_findings
    if code == EXIT_OK and collector.total and fails:
        return EXIT_FINDINGS
    return code


# -- report, rules, demo ----------------------------------------------------------------------


def _read_report(path: str) -> FindingCollector:
    """``load_report`` with every failure turned into one usage-error line (exit 2)."""
    try:
        return load_report(path)
    except ConfigError as exc:
        # One shape for every failure: "cannot read report 'x.json': why".
        message = str(exc)
        if message.startswith("cannot read report"):
            raise
        message = message.removeprefix(f"{path!r} ").removeprefix("is ")
        raise _UsageError(f"cannot read report {path!r}: {message}") from None
    except RecursionError:
        raise _UsageError(f"cannot read report {path!r}: it is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt file must not give a traceback
        # The reader checks the layout; a value of the wrong type deep inside a
        # finding can still fail while it is rebuilt. Name the file, not our code.
        raise _UsageError(
            f"cannot read report {path!r}: not a valid loopwarden report "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _cmd_report(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    collectors = [_read_report(path) for path in args.input]
    collector = collectors[0] if len(collectors) == 1 else merge_collectors(collectors)
    if args.output:
        try:
            written = write_report(collector, args.output)
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise _UsageError(f"cannot write report {args.output!r}: {reason}") from None
        print(f"loopwarden: {collector.total} findings; report written to {written}", file=stdout)
    else:
        print_summary(collector, stdout)
    return EXIT_OK


def _cmd_rules(args: argparse.Namespace, stdout: TextIO) -> int:
    from loopwarden.registry import registry
    from loopwarden.rules_reference import format_rules

    rules = registry.rules()
    extra = load_pyproject_config().rules
    rules.extend(r for r in extra if r not in rules)
    print(format_rules(rules, fmt=args.format, families=args.family), file=stdout)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        from loopwarden.demo import run_demo
    except ImportError as exc:
        from loopwarden.qt_system_libs import describe_qt_import_error

        # Not always a missing pip package: on a bare server PySide6 is there
        # but a system library Qt loads (libEGL, libxkbcommon...) is not.
        advice = describe_qt_import_error(exc) or (
            f"PySide6 and qasync could not be imported ({exc}); "
            "install them with: pip install 'loopwarden[qt]'"
        )
        print(f"loopwarden: the demo cannot start: {advice}", file=stderr)
        return EXIT_USAGE
    return run_demo(
        report=args.report, json_report=args.json, stall_ms=args.stall_ms or None, stdout=stdout
    )


# -- entry point ----------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line and return its exit code (see the module docstring)."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    target: _Target | None = None
    if arguments[:1] == ["run"]:
        own, rest = _split_run_argv(arguments[1:])
        arguments = ["run", *own]
        target = _Target(module=None, script=None, args=rest)
    try:
        # argparse prints help and usage errors itself: send them to our streams.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(arguments)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return _exit_code(exc.code, err)
    try:
        return _dispatch(args, target, out, err)
    except (_UsageError, ConfigError) as exc:
        print(f"loopwarden: {exc}", file=err)
        return EXIT_USAGE
    except BrokenPipeError:
        # `loopwarden rules | head`: the reader left. Silence the flush at exit
        # (the recipe of the signal module's docs) and report the failure.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


def _dispatch(
    args: argparse.Namespace,
    target: _Target | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run the chosen command."""
    if args.command == "run":
        assert target is not None
        if args.module:
            target.module = args.module
        elif target.args:
            target.script, target.args = target.args[0], target.args[1:]
        else:
            raise _UsageError("run needs a script (loopwarden run app.py) or -m MODULE")
        return _cmd_run(args, target, out, err)
    if args.command == "report":
        return _cmd_report(args, out, err)
    if args.command == "rules":
        return _cmd_rules(args, out)
    return _cmd_demo(args, out, err)
