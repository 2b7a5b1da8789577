"""Run qasync's own test suite under loopwarden and classify every finding.

This is issue 15's bar: on a real project's suite, every finding loopwarden
leaves must be real blocking (or a real wrong-thread call), never a call that
returns at once, a library line blamed instead of the project's, a call off
the loop thread or loopwarden's own machinery.

The script takes a local qasync checkout (it never downloads anything) and
runs its suite the way a user's project would, with ``pytest --block-detect``:

1. once without loopwarden (the baseline: which tests pass, fail, skip);
2. once per mode (``record``, ``fail``, ``raise`` by default), with a JSON
   report of the findings.

It prints the findings with their classification (the :data:`KNOWN` table:
why each one is real) and every test whose outcome differs from the
baseline. Exit status: 0 when every finding is classified and every test
that newly fails is explained by a classified finding in that test; 1
otherwise; 2 for a bad checkout path.

Usage::

    python scripts/run_qasync_suite.py ~/src/qasync
    python scripts/run_qasync_suite.py ~/src/qasync --python .venv/bin/python --modes record,raise
    python scripts/run_qasync_suite.py ~/src/qasync --as-library

The qasync checkout's ``src`` directory comes first on ``PYTHONPATH`` (its tests
import names that only its own source has), then this repository's ``src`` and
``conftest_plugin``. With ``--as-library`` a copy of that source is imported
from a ``site-packages`` directory instead, so loopwarden treats qasync as a
third-party library, as in a project that depends on it. The Python running
the suite needs PySide6 and pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = ("record", "fail", "raise", "warn")
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Known:
    """One finding of qasync's suite that was checked by hand, and why it is real.

    Attributes:
        test: Regular expression the finding's test id must match (``re.search``).
        primitive: The finding's primitive.
        verdict: The kind of real problem.
        why: What the code does, in one sentence.
    """

    test: str
    primitive: str
    verdict: str
    why: str


#: Every finding qasync's suite produced (qasync 0.28.0, PySide6 6.11, Python 3.10-3.13),
#: each read against the test and qasync's source.
KNOWN: tuple[Known, ...] = (
    Known(
        r"::test_slow_callback_duration_logging$",
        "time.sleep",
        "real blocking",
        "the coroutine calls time.sleep(1) on the loop on purpose, to trigger asyncio's "
        "slow-callback warning",
    ),
    Known(
        r"::test_async_wrap\[False-False-True\]$",
        "PySide6.QtCore.QCoreApplication.processEvents",
        "real reentrancy",
        "a task calls processEvents(), which re-enters the running loop; the test expects "
        "asyncio's 'Cannot enter into task' RuntimeError (the asyncWrap variant is silent)",
    ),
    Known(
        r"::test_qeventloop_in_qthread\[(True|False)\]$",
        "QObject.__init__",
        "real wrong-thread",
        "QEventLoop(app=<the QThread object>) in QThread.run: _add_reader parents the "
        "self-pipe's QSocketNotifier to `app` (it lives in the main thread) instead of "
        "qtparent; Qt refuses and prints the same warning without loopwarden",
    ),
    Known(
        r"::test_qeventloop_in_qthread\[(True|False)\]$",
        "QSocketNotifier.setEnabled",
        "real wrong-thread",
        "join() calls loop.close() on the main thread while the loop's notifiers live in "
        "the worker QThread; Qt prints this warning itself (intermittent: only when the "
        "worker thread is still running)",
    ),
)


@dataclass(frozen=True)
class Run:
    """One pytest run of the suite: each test's outcome and the findings."""

    mode: str
    outcomes: dict[str, str]
    findings: list[dict[str, object]]
    returncode: int


def classify(finding: dict[str, object]) -> Known | None:
    """The :data:`KNOWN` entry that explains ``finding``, or None."""
    nodeid = str(finding.get("nodeid") or "")
    for known in KNOWN:
        if finding.get("primitive") == known.primitive and re.search(known.test, nodeid):
            return known
    return None


def _nodeid(case: ET.Element) -> str:
    """A pytest node id from a JUnit (xunit1) test case: file, class, name."""
    file = case.get("file", "")
    module = file.removesuffix(".py").replace("/", ".")
    classname = case.get("classname", "")
    rest = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    parts = [file, *rest.split("."), case.get("name", "")] if rest else [file, case.get("name", "")]
    return "::".join(parts)


def read_outcomes(junit: Path) -> dict[str, str]:
    """Each test's outcome (passed, failed, skipped) from a JUnit XML file."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        outcomes[_nodeid(case)] = outcome
    return outcomes


def _environment(qasync_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWARDEN")}
    path = [str(qasync_path), str(REPO / "src"), str(REPO / "conftest_plugin")]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("QT_API", "pyside6")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _plugin_args(python: str, env: dict[str, str]) -> list[str]:
    """``-p pytest_loopwarden`` unless the plugin's entry point is installed already.

    Naming a plugin with -p that an entry point also registers is an error in pytest.
    """
    probe = (
        "import importlib.metadata as m; "
        "print(any(e.name == 'loopwarden' for e in m.entry_points(group='pytest11')))"
    )
    result = subprocess.run(
        [python, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    return [] if result.stdout.strip() == "True" else ["-p", "pytest_loopwarden"]


def run_suite(
    python: str,
    checkout: Path,
    qasync_path: Path,
    mode: str | None,
    workdir: Path,
    extra: Sequence[str],
) -> Run:
    """Run the suite once; ``mode`` None is the baseline (loopwarden off).

    ``qasync_path`` is the directory qasync is imported from: the checkout's
    ``src``, or a copy under a ``site-packages`` directory (``--as-library``).
    """
    env = _environment(qasync_path)
    name = mode or "baseline"
    junit = workdir / f"{name}.xml"
    report = workdir / f"{name}.json"
    command = [python, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += ["-o", "junit_family=xunit1", f"--junitxml={junit}"]
    command += _plugin_args(python, env)
    if mode is None:
        command.append("--block-detect=off")
    else:
        command += [f"--block-detect={mode}", f"--block-detect-report={report}"]
    command += list(extra)
    result = subprocess.run(
        command,
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    (workdir / f"{name}.log").write_text(result.stdout)
    if not junit.exists():
        sys.exit(f"pytest did not run the suite ({name}); its output:\n{result.stdout[-3000:]}")
    findings: list[dict[str, object]] = []
    if report.exists():
        findings = json.loads(report.read_text())["findings"]
    return Run(name, read_outcomes(junit), findings, result.returncode)


def _counts(outcomes: dict[str, str]) -> str:
    tally = Counter(outcomes.values())
    return ", ".join(f"{tally[k]} {k}" for k in ("passed", "failed", "skipped") if tally[k])


def _table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    rows = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(nodeid: str) -> str:
    return nodeid.rpartition("/")[2]


def _place(finding: dict[str, object], root: Path) -> str:
    """The finding's place to fix (file:line), relative to the checkout when inside it."""
    caller = str(finding.get("user_caller") or finding.get("caller") or "")
    where = caller.partition(" in ")[0]
    prefix = f"{root}{os.sep}"
    return where[len(prefix) :] if where.startswith(prefix) else where


def _blocked(finding: dict[str, object]) -> str:
    ms = finding.get("duration_ms")
    return f"{ms:.2f} ms" if isinstance(ms, (int, float)) else "-"


def report(baseline: Run, runs: Sequence[Run], root: Path) -> int:
    """Print the tables; return the exit status (0: every finding and failure explained)."""
    problems = 0
    print(f"baseline (no loopwarden): {_counts(baseline.outcomes)}")
    for run in runs:
        families = Counter(str(f.get("family")) for f in run.findings)
        by_family = ", ".join(f"{k} {v}" for k, v in sorted(families.items())) or "none"
        print(
            f"--block-detect={run.mode}: {_counts(run.outcomes)}; "
            f"{len(run.findings)} findings ({by_family})"
        )
    print()
    rows = []
    seen: set[tuple[str, str, str]] = set()
    for run in runs:
        for finding in run.findings:
            key = (str(finding.get("nodeid")), str(finding.get("primitive")), _place(finding, root))
            if key in seen:
                continue
            seen.add(key)
            known = classify(finding)
            if known is None:
                problems += 1
            rows.append(
                [
                    run.mode,
                    _short(key[0]),
                    key[1],
                    str(finding.get("family")),
                    key[2],
                    _blocked(finding),
                    known.verdict if known else "UNCLASSIFIED",
                ]
            )
    header = ["first seen", "test", "primitive", "family", "place to fix", "blocked", "verdict"]
    print("Findings (each test, primitive and place once):")
    print(_table(rows, header) if rows else "  none")
    print()
    changed = []
    for run in runs:
        explained = {str(f.get("nodeid")) for f in run.findings if classify(f) is not None}
        for nodeid, outcome in sorted(run.outcomes.items()):
            before = baseline.outcomes.get(nodeid, "absent")
            if outcome == before:
                continue
            # Only fail and raise mode may fail a test, and only for a real finding.
            ok = outcome == "failed" and run.mode in ("fail", "raise") and nodeid in explained
            if not ok:
                problems += 1
            why = "its finding above" if ok else "UNEXPLAINED"
            changed.append([run.mode, _short(nodeid), f"{before} -> {outcome}", why])
    print("Tests whose outcome differs from the baseline:")
    print(_table(changed, ["mode", "test", "outcome", "why"]) if changed else "  none")
    print()
    for known in KNOWN:
        print(f"- {known.primitive} ({known.verdict}): {known.why}")
    print()
    print("all findings real" if problems == 0 else f"{problems} finding(s)/failure(s) to look at")
    return 0 if problems == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite in every mode and print the classified findings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a local qasync checkout (never fetched)")
    parser.add_argument("--python", default=sys.executable, help="Python that runs the suite")
    parser.add_argument(
        "--modes",
        default="record,fail,raise",
        help=f"comma-separated --block-detect modes (from {', '.join(MODES)})",
    )
    parser.add_argument("--keep", type=Path, help="keep the logs and JSON reports here")
    parser.add_argument(
        "--as-library",
        action="store_true",
        help="import qasync from a copy under a site-packages directory, as a project that "
        "depends on it would (findings inside qasync then name the test's line)",
    )
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    checkout: Path = args.checkout.resolve()
    if not (checkout / "tests").is_dir() or not (checkout / "src" / "qasync").is_dir():
        parser.error(f"{checkout} is not a qasync checkout (no tests/ and src/qasync/ in it)")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    wrong = [m for m in modes if m not in MODES]
    if wrong or not modes:
        parser.error(f"unknown mode(s) {', '.join(wrong) or '(none)'}; use {', '.join(MODES)}")
    version = re.search(r'^version = "([^"]+)"', (checkout / "pyproject.toml").read_text(), re.M)
    print(f"qasync {version.group(1) if version else '?'} at {checkout}; python {args.python}")
    with tempfile.TemporaryDirectory(prefix="qasync-suite-") as tmp:
        workdir = args.keep.resolve() if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        qasync_path = checkout / "src"
        if args.as_library:
            qasync_path = Path(tmp) / "site-packages"
            shutil.copytree(checkout / "src" / "qasync", qasync_path / "qasync")
        baseline = run_suite(args.python, checkout, qasync_path, None, workdir, args.pytest_args)
        runs = [
            run_suite(args.python, checkout, qasync_path, mode, workdir, args.pytest_args)
            for mode in modes
        ]
        return report(baseline, runs, checkout)


if __name__ == "__main__":
    sys.exit(main())
