"""The bundled demo: ``python -m loopwarden demo``.

A small PySide6 + qasync app makes five classic mistakes on the GUI thread
and does the same work correctly off it, under detection in ``record`` mode;
then it prints the findings and writes an HTML report. It runs offscreen
(``QT_QPA_PLATFORM=offscreen`` unless you set another platform) and finishes
by itself in a few seconds.

This package's modules count as *user* code for loopwarden (see
:mod:`loopwarden.frames`): their blocking calls are findings on purpose.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

# Imported here so that a missing Qt fails at `from loopwarden.demo import run_demo`.
import PySide6.QtWidgets  # noqa: F401
import qasync

from loopwarden.report import FindingCollector, print_summary, write_report
from loopwarden.warden import guard

__all__ = ["run_demo"]


def run_demo(
    report: str | os.PathLike[str] | None = "loopwarden-report.html",
    *,
    stall_ms: float | None = 200.0,
    json_report: str | os.PathLike[str] | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the demo app under detection and report what it found.

    Args:
        report: Where to write the report (``.html`` or ``.json``); None: no report.
        stall_ms: Stall watchdog threshold, used when the watchdog is available.
            200 ms by default: well under the demo's 300 ms stall, and above
            the hiccups of a busy machine.
        json_report: Also write the findings as JSON here.
        stdout: Where to print progress and the summary (default: ``sys.stdout``).

    Returns:
        0 (the findings are the point of the demo, not a failure).
    """
    out = sys.stdout if stdout is None else stdout
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from loopwarden.demo.app import (
        DemoWindow,
        application,
        prepare_workdir,
        quiet_offscreen_warnings,
        run_scenario,
    )
    from loopwarden.demo.server import StatusServer

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    app = application()
    quiet_offscreen_warnings()
    collector = FindingCollector()
    options: dict[str, Any] = {"mode": "record", "on_finding": collector}
    if stall_ms:
        options["stall_ms"] = stall_ms
    collector.meta.update(
        command="loopwarden demo", mode="record", stall_ms=options.get("stall_ms")
    )
    say(
        "loopwarden demo: a PySide6 + qasync app making five classic mistakes on the GUI thread"
        " and one in a worker thread"
    )
    with (
        tempfile.TemporaryDirectory(prefix="loopwarden-demo-") as tmp,
        StatusServer() as server,
    ):
        workdir = Path(tmp)
        prepare_workdir(workdir)
        window = DemoWindow(workdir, server.url)
        # Show and paint the window before detection starts: the first paint
        # loads fonts, which is start-up cost, not one of the demo's mistakes.
        window.show()
        app.processEvents()
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        try:
            with guard(**options):
                loop.run_until_complete(run_scenario(window, say))
        finally:
            loop.close()
            asyncio.set_event_loop(None)
            window.deleteLater()
    collector.finish()
    say("")
    print_summary(collector, out)
    for path in (report, json_report):
        if path is not None:
            written = write_report(collector, path)
            hint = " - open it in a browser" if written.suffix != ".json" else ""
            say(f"Report written to {written}{hint}.")
    return 0
