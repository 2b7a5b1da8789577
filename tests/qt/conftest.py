"""Fixtures for the Qt tests: pytest-qt's single offscreen ``qapp``, a qasync
loop per test, and a safety net that closes stray dialogs so nothing hangs."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMenu


@pytest.fixture(autouse=True)
def _keep_app_running(qapp: QApplication) -> None:
    # Closing the last dialog must not quit the app (and with it the loop under test).
    qapp.setQuitOnLastWindowClosed(False)


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread() -> Iterator[None]:
    """Free each test's garbage QObjects here, on the thread they live in.

    Qt objects caught in reference cycles (a QTimer and the lambda connected to
    it, a qasync loop and its timers) are freed by the garbage collector on
    whatever thread it next runs: often a worker thread of a later test. Qt
    cannot stop a timer from another thread, so such a timer stays registered
    with the GUI thread and later fires on the freed object (SIGSEGV in
    QTimerInfoList::activateTimers). loopwarden's own receiver had that bug
    (tests/qt/test_qt_heartbeat_lifetime.py); test objects are collected here.
    """
    yield
    gc.collect()


@pytest.fixture
def qasync_loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp)
    try:
        yield loop
    finally:
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def safety_net(qapp: QApplication) -> Iterator[None]:
    """Close any dialog or menu left open, so a failing test cannot hang."""

    def close_strays() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, (QDialog, QMenu)) and widget.isVisible():
                widget.close()
                if isinstance(widget, QDialog):
                    widget.reject()

    timer = QTimer()
    timer.timeout.connect(close_strays)
    timer.start(300)
    try:
        yield
    finally:
        timer.stop()
        close_strays()
