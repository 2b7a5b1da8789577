"""The demo application: a small PySide6 + qasync window with classic mistakes.

Each mistake has a twin that does the same work correctly, off the loop:

=====================================  =========================================
On the GUI thread (a finding)           The fix (no finding)
=====================================  =========================================
``time.sleep`` in a button slot         ``QTimer.singleShot`` / ``asyncio.sleep``
sync file read in a coroutine           ``await asyncio.to_thread(path.read_text)``
``urllib`` request in a coroutine       ``await loop.run_in_executor(None, ...)``
``QThread.wait()`` in a slot            ``QThread.finished`` signal
300 ms of number crunching in a slot    ``await asyncio.to_thread(crunch, ...)``
``loop.call_soon`` from a worker        ``loop.call_soon_threadsafe``
=====================================  =========================================

The mistakes are deliberate: keep them. The stall watchdog and the network
and Qt rule families report the fourth and fifth (sleep and file reads are
always reported). The last one is the reverse mistake, a worker thread
touching the loop (family ``thread``): under qasync the callback it schedules
never runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QMessageLogContext,
    QObject,
    QThread,
    QTimer,
    QtMsgType,
    Signal,
    SignalInstance,
    qInstallMessageHandler,
)
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "DemoWindow",
    "application",
    "prepare_workdir",
    "quiet_offscreen_warnings",
    "run_scenario",
]

#: How long the deliberate CPU stall lasts (the demo's stall threshold is 200 ms).
CRUNCH_SECONDS = 0.3
#: How long the deliberate sleep lasts.
SLEEP_SECONDS = 0.05


def crunch_numbers(seconds: float) -> int:
    """Pure-Python number crunching for ``seconds`` (no blocking primitive at all)."""
    deadline = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < deadline:
        total += sum(i * i for i in range(500))
    return total


def http_get_json(url: str) -> Any:
    """A plain, blocking HTTP GET."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class ExportThread(QThread):
    """Writes an export file in a worker thread (correct: off the GUI thread)."""

    def __init__(self, target: Path, lines: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.target = target
        self.lines = lines

    def run(self) -> None:
        """Runs in the worker thread: blocking here is fine."""
        self.target.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        time.sleep(SLEEP_SECONDS)  # a slow disk, say; harmless in a worker


class DemoWindow(QMainWindow):
    """A window whose buttons do their work the wrong way and the right way."""

    step_done = Signal(str)

    def __init__(self, workdir: Path, status_url: str) -> None:
        super().__init__()
        self.workdir = workdir
        self.status_url = status_url
        self.setWindowTitle("loopwarden demo")
        self.status = QLabel("Ready")
        self.log = QListWidget()
        self.refresh_button = QPushButton("Refresh (sleeps in the slot)")
        self.refresh_fixed_button = QPushButton("Refresh (QTimer)")
        self.export_button = QPushButton("Export (waits for the thread)")
        self.export_fixed_button = QPushButton("Export (finished signal)")
        self.stats_button = QPushButton("Statistics (crunches on the GUI thread)")
        layout = QVBoxLayout()
        for widget in (
            self.status,
            self.refresh_button,
            self.refresh_fixed_button,
            self.export_button,
            self.export_fixed_button,
            self.stats_button,
            self.log,
        ):
            layout.addWidget(widget)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)
        self.refresh_button.clicked.connect(self.on_refresh_clicked)
        self.refresh_fixed_button.clicked.connect(self.on_refresh_fixed_clicked)
        self.export_button.clicked.connect(self.on_export_clicked)
        self.export_fixed_button.clicked.connect(self.on_export_fixed_clicked)
        self.stats_button.clicked.connect(self.on_stats_clicked)
        self._threads: list[QThread] = []

    def note(self, text: str) -> None:
        """Show a line in the window's log."""
        self.log.addItem(text)
        self.status.setText(text)

    # -- 1. sleeping in a slot ---------------------------------------------------------

    def on_refresh_clicked(self) -> None:
        """MISTAKE: waits for the device with time.sleep on the GUI thread."""
        time.sleep(SLEEP_SECONDS)
        self.note("refreshed (after freezing the window)")
        self.step_done.emit("refresh")

    def on_refresh_fixed_clicked(self) -> None:
        """FIX: let a QTimer call back; the window stays responsive meanwhile."""
        QTimer.singleShot(int(SLEEP_SECONDS * 1000), self._refresh_done)

    def _refresh_done(self) -> None:
        self.note("refreshed (window stayed responsive)")
        self.step_done.emit("refresh-fixed")

    # -- 4. waiting for a QThread -----------------------------------------------------

    def on_export_clicked(self) -> None:
        """MISTAKE: starts a worker, then blocks the GUI thread until it is done."""
        thread = ExportThread(self.workdir / "export-blocking.txt", ["a", "b"], self)
        thread.start()
        thread.wait()
        self.note("exported (after freezing the window)")
        self.step_done.emit("export")

    def on_export_fixed_clicked(self) -> None:
        """FIX: start the worker and carry on when it signals ``finished``."""
        thread = ExportThread(self.workdir / "export-fixed.txt", ["a", "b"], self)
        self._threads.append(thread)
        thread.finished.connect(self._export_done)
        thread.start()

    def _export_done(self) -> None:
        self.note("exported (window stayed responsive)")
        self.step_done.emit("export-fixed")

    # -- 5. CPU work in a slot ---------------------------------------------------------

    def on_stats_clicked(self) -> None:
        """MISTAKE: 300 ms of pure-Python work on the GUI thread (only a watchdog sees it)."""
        crunch_numbers(CRUNCH_SECONDS)
        self.note("statistics ready (after freezing the window)")
        self.step_done.emit("stats")

    # -- 2. and 3. coroutines ------------------------------------------------------------

    async def load_settings(self) -> dict[str, Any]:
        """MISTAKE: reads a file synchronously inside a coroutine."""
        text = (self.workdir / "settings.json").read_text(encoding="utf-8")
        return dict(json.loads(text))

    async def load_settings_fixed(self) -> dict[str, Any]:
        """FIX: the same read in a worker thread."""
        path = self.workdir / "settings.json"
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        return dict(json.loads(text))

    async def fetch_status(self) -> Any:
        """MISTAKE: a blocking HTTP request inside a coroutine."""
        return http_get_json(self.status_url + "/status")

    async def fetch_status_fixed(self) -> Any:
        """FIX: the same request in the loop's default executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, http_get_json, self.status_url + "/status")

    async def statistics_fixed(self) -> int:
        """FIX: the number crunching in a worker thread."""
        return await asyncio.to_thread(crunch_numbers, CRUNCH_SECONDS)

    # -- 6. a worker thread touching the loop --------------------------------------------

    def report_from_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        """MISTAKE: runs in a worker; loop.call_soon is not thread-safe (the note is lost)."""
        loop.call_soon(self.note, "worker done (this line never shows)")

    def report_from_worker_fixed(
        self, loop: asyncio.AbstractEventLoop, done: Callable[[], Any]
    ) -> None:
        """FIX: runs in a worker; call_soon_threadsafe runs ``done`` on the loop thread."""
        loop.call_soon_threadsafe(done)


def prepare_workdir(workdir: Path) -> None:
    """Create the files the demo reads (before the loop runs: no finding)."""
    (workdir / "settings.json").write_text(json.dumps({"theme": "dark"}), encoding="utf-8")


async def _click(window: DemoWindow, button: QPushButton, step: str) -> None:
    """Click ``button`` from the Qt event loop and wait until its work signals ``step``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def on_step(name: str) -> None:
        if name == step and not future.done():
            future.set_result(None)

    signal: SignalInstance = window.step_done
    signal.connect(on_step)
    try:
        # A timer, not a direct call: the slot runs from Qt's event dispatch,
        # as it would for a real click.
        QTimer.singleShot(0, button.click)
        await asyncio.wait_for(future, timeout=10)
    finally:
        signal.disconnect(on_step)


async def run_scenario(window: DemoWindow, say: Callable[[str], None]) -> None:
    """Play every mistake and its fix, in order, on the running qasync loop."""
    await asyncio.sleep(0.05)

    say("1. time.sleep() in a button slot ... and the QTimer fix")
    await _click(window, window.refresh_button, "refresh")
    await _click(window, window.refresh_fixed_button, "refresh-fixed")

    say("2. a synchronous file read in a coroutine ... and asyncio.to_thread")
    await window.load_settings()
    await window.load_settings_fixed()

    say("3. a blocking HTTP request (urllib) in a coroutine ... and run_in_executor")
    await window.fetch_status()
    await window.fetch_status_fixed()

    say("4. QThread.wait() on the GUI thread ... and the finished signal")
    await _click(window, window.export_button, "export")
    await _click(window, window.export_fixed_button, "export-fixed")

    say(f"5. {CRUNCH_SECONDS * 1000:.0f} ms of number crunching in a slot ... and a worker thread")
    await _click(window, window.stats_button, "stats")
    await window.statistics_fixed()

    say("6. loop.call_soon() from a worker thread ... and call_soon_threadsafe")
    loop = asyncio.get_running_loop()
    worker_done: asyncio.Future[None] = loop.create_future()

    def worker() -> None:
        window.report_from_worker(loop)
        window.report_from_worker_fixed(loop, lambda: worker_done.set_result(None))

    thread = threading.Thread(target=worker, name="demo-worker")
    thread.start()
    await asyncio.wait_for(worker_done, timeout=10)
    await asyncio.to_thread(thread.join)

    # Let the watchdog see the loop come back before detection stops.
    await asyncio.sleep(0.1)
    window.close()


def application() -> QApplication:
    """The running QApplication, created (offscreen if no platform is set) if needed."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    return QApplication(["loopwarden-demo"])


def _qt_message(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
    # The offscreen platform warns about window features it lacks; that is noise here.
    if "This plugin does not support" in message:
        return
    print(f"Qt: {message}", file=sys.stderr)


def quiet_offscreen_warnings() -> None:
    """Drop the offscreen platform's "does not support" warnings; print other Qt messages."""
    qInstallMessageHandler(_qt_message)
