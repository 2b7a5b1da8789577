"""Stress: the documented start-up pattern with the stall watchdog, run many times.

Each run is a fresh interpreter that does what a dev build does:
``loopwarden.activate_from_env()`` with ``LOOPWARDEN_STALL_MS`` set *before*
PySide6 is imported, then imports PySide6, creates a ``QApplication`` with a
few widgets and runs a short qasync app (timers, awaits, enum-heavy widget
calls) while the watchdog watches the GUI thread. A run that dies from a
signal (SIGSEGV, SIGABRT) is a crash; one that does not finish in time is a
hang. Before the fix for issue 12.1 about 1-3 % of runs crashed.

Not collected by pytest (the file name does not start with ``test_``):

    python tests/stress/qt_watchdog_startup.py --runs 300 --jobs 2
    python tests/stress/qt_watchdog_startup.py --runs 5      # smoke run

Exits 1 if any run crashed or hung, so CI could run it as a job.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

APP = r"""
import loopwarden
loopwarden.activate_from_env()  # before PySide6 is imported: the documented pattern

import asyncio
import qasync
from PySide6.QtCore import QTimer, Qt
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QVBoxLayout, QWidget

app = QApplication([])
window = QWidget()
layout = QVBoxLayout(window)
labels = [QLabel(f"label {i}") for i in range(20)]
for label in labels:
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    layout.addWidget(label)
button = QPushButton("go")
layout.addWidget(button)
window.show()
ticks = []
timer = QTimer()
timer.setTimerType(Qt.TimerType.CoarseTimer)
timer.timeout.connect(lambda: ticks.append(Qt.CursorShape.ArrowCursor))
timer.start(1)


async def main() -> None:
    for i in range(40):
        for label in labels:
            label.setText(f"{i}")
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        await asyncio.sleep(0.005)
    timer.stop()


loop = qasync.QEventLoop(app)
asyncio.set_event_loop(loop)
with loop:
    loop.run_until_complete(main())
print("ok", len(ticks))
"""


def one_run(index: int, stall_ms: str, timeout: float) -> str:
    """Run the app once; return 'ok', 'hang', 'crash:SIGNAME' or 'error:N'."""
    env = dict(os.environ)
    env.update(
        LOOPWARDEN="record",
        LOOPWARDEN_STALL_MS=stall_ms,
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=os.pathsep.join(
            [str(ROOT / "src"), str(ROOT / "conftest_plugin"), env.get("PYTHONPATH", "")]
        ),
    )
    env.pop("LOOPWARDEN_REPORT", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", APP],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "hang"
    if proc.returncode < 0:
        return f"crash:{signal.Signals(-proc.returncode).name}"
    if proc.returncode != 0 or not proc.stdout.startswith("ok"):
        sys.stderr.write(f"run {index}: exit {proc.returncode}\n{proc.stderr[-2000:]}\n")
        return f"error:{proc.returncode}"
    return "ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--stall-ms", default="20")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    outcomes: collections.Counter[str] = collections.Counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        for outcome in pool.map(
            lambda i: one_run(i, args.stall_ms, args.timeout), range(args.runs)
        ):
            outcomes[outcome] += 1
    bad = args.runs - outcomes["ok"]
    print(
        f"{args.runs} runs (Python {sys.version.split()[0]}, stall_ms={args.stall_ms}): "
        + ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
        + f"; {bad} bad ({100.0 * bad / args.runs:.1f} %)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
