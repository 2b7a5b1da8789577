"""The GUI-thread guard: on while a Qt event loop runs on the GUI thread, off elsewhere."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest
from PySide6.QtCore import (
    QCoreApplication,
    QEventLoop,
    QObject,
    QRunnable,
    QThread,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import QApplication
from qt_support import in_qt_slot, primitives

import loopwarden
from loopwarden.qt import describe_qt_loop, gui_thread_id
from loopwarden.threads import thread_probes
from rules_support import run_script

pytestmark = pytest.mark.timeout(30)


def test_probe_is_registered_only_while_a_warden_is_active(qapp: QApplication) -> None:
    assert thread_probes.get(gui_thread_id()) is not describe_qt_loop
    with loopwarden.guard(mode="record"):
        assert thread_probes.get(threading.get_ident()) is describe_qt_loop
        with loopwarden.guard(mode="record"):
            assert thread_probes.get(threading.get_ident()) is describe_qt_loop
        assert thread_probes.get(threading.get_ident()) is describe_qt_loop
    assert describe_qt_loop not in thread_probes.values()


def test_slot_of_qeventloop_exec_is_guarded(qapp: QApplication) -> None:
    with loopwarden.guard(mode="record") as warden:
        in_qt_slot(lambda: time.sleep(0.001))
    assert primitives(warden) == ["time.sleep"]
    finding = warden.findings[0]
    assert "Qt event loop" in finding.loop
    assert finding.thread_id == threading.get_ident()
    assert "test_qt_gui_thread.py" in finding.caller


def test_slot_of_app_exec_is_guarded_in_raise_mode(qapp: QApplication, qtbot) -> None:
    def slot() -> None:
        try:
            time.sleep(0.001)
        finally:
            QCoreApplication.quit()

    with loopwarden.guard(mode="raise") as warden, qtbot.captureExceptions() as errors:
        QTimer.singleShot(0, slot)
        QCoreApplication.exec()
    # Qt swallowed the error (it went to sys.excepthook); the warden still has it.
    assert primitives(warden) == ["time.sleep"]
    assert [type(error[1]) for error in errors] == [loopwarden.BlockingCallError]


def test_test_body_without_a_running_loop_is_not_guarded(qapp: QApplication) -> None:
    with loopwarden.guard(mode="raise") as warden:
        time.sleep(0.001)
        QThread.msleep(1)
    assert warden.findings == []


def test_slot_run_by_bare_process_events_is_not_guarded(qapp: QApplication) -> None:
    # loopLevel() stays 0: this is the test body pumping events, not an event loop.
    ran: list[int] = []

    def slot() -> None:
        ran.append(QThread.currentThread().loopLevel())
        time.sleep(0.001)

    with loopwarden.guard(mode="raise") as warden:
        QTimer.singleShot(0, slot)
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    assert ran == [0]
    assert warden.findings == []


def test_pytest_qt_wait_signal_runs_a_guarded_loop(qapp: QApplication, qtbot) -> None:
    class Emitter(QObject):
        done = Signal()

    emitter = Emitter()

    def slot() -> None:
        time.sleep(0.001)
        emitter.done.emit()

    with loopwarden.guard(mode="record") as warden, qtbot.waitSignal(emitter.done, timeout=5000):
        QTimer.singleShot(0, slot)
    assert primitives(warden) == ["time.sleep"]


class _SleepyThread(QThread):
    """A worker QThread that runs its own Qt event loop and blocks in a slot of it."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: list[int] = []

    def run(self) -> None:
        def work() -> None:
            self.levels.append(QThread.currentThread().loopLevel())
            time.sleep(0.001)
            QThread.msleep(1)
            self.exit()

        QTimer.singleShot(0, work)
        self.exec()


def test_worker_qthread_with_its_own_event_loop_is_not_guarded(qapp: QApplication) -> None:
    thread = _SleepyThread()
    with loopwarden.guard(mode="raise") as warden:
        thread.start()
        assert thread.wait(5000)
    assert thread.levels == [1]  # a Qt loop really ran there
    assert warden.findings == []


def test_qthreadpool_runnable_is_not_guarded(qapp: QApplication) -> None:
    ran = threading.Event()

    class Task(QRunnable):
        def run(self) -> None:
            time.sleep(0.001)
            QThread.msleep(1)
            ran.set()

    pool = QThreadPool()
    with loopwarden.guard(mode="raise") as warden:
        in_qt_slot(lambda: pool.start(Task()))
        assert ran.wait(5)
        pool.waitForDone(5000)
    assert warden.findings == []


_LATE_IMPORT = textwrap.dedent(
    """
    import time
    import loopwarden

    warden = loopwarden.activate(mode="record")
    # PySide6 is imported and the application created after activation.
    from PySide6.QtCore import QCoreApplication, QThread, QTimer

    app = QCoreApplication([])

    def slot():
        QThread.msleep(1)
        time.sleep(0.001)
        QCoreApplication.quit()

    QTimer.singleShot(0, slot)
    QTimer.singleShot(5000, QCoreApplication.quit)
    app.exec()
    QThread.msleep(1)  # after exec: no loop runs, not a finding
    print(",".join(f.primitive for f in warden.findings))
    """
)


def test_pyside_imported_after_activation_is_picked_up() -> None:
    output = run_script(_LATE_IMPORT)
    assert output.strip() == "PySide6.QtCore.QThread.msleep,time.sleep"


_NO_PROBE_BEFORE_IMPORT = textwrap.dedent(
    """
    import sys
    import loopwarden
    from loopwarden.threads import thread_probes

    assert "PySide6.QtCore" not in sys.modules
    with loopwarden.guard(mode="record"):
        # No probe until Qt is imported: main-thread calls keep the fast path.
        before = dict(thread_probes)
        import PySide6.QtCore
        after = dict(thread_probes)
    print(len(before), len(after), len(thread_probes))
    """
)


def test_no_probe_until_pyside_is_imported() -> None:
    output = run_script(_NO_PROBE_BEFORE_IMPORT)
    assert output.split() == ["0", "1", "0"]


def test_gui_thread_id_names_the_applications_thread_from_anywhere(qapp: QApplication) -> None:
    main = threading.main_thread().ident
    answers = [gui_thread_id(), gui_thread_id()]  # the second one from what the first saw
    worker: list[int] = []
    thread = threading.Thread(target=lambda: worker.append(gui_thread_id()))
    thread.start()
    thread.join()

    class Asker(QThread):
        answer = 0

        def run(self) -> None:
            self.answer = gui_thread_id()

    asker = Asker()
    asker.start()
    assert asker.wait(10_000)
    assert answers == [main, main]
    assert worker == [main]
    assert asker.answer == main


def test_gui_thread_id_follows_an_application_on_a_worker_then_a_new_one_on_main() -> None:
    # The main thread's answer is remembered per application: a worker thread's
    # application is asked again at every call, and one made later on the main
    # thread is not taken for the one before.
    code = textwrap.dedent(
        """
        import gc, threading
        from PySide6.QtCore import QCoreApplication
        from loopwarden.qt import gui_thread_id

        main = threading.main_thread().ident
        seen = {}

        def worker():
            app = QCoreApplication([])
            seen["worker"] = [gui_thread_id(), gui_thread_id()]
            seen["ident"] = threading.get_ident()
            app.shutdown()
            del app
            gc.collect()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert seen["worker"] == [seen["ident"]] * 2, seen
        assert QCoreApplication.instance() is None
        assert gui_thread_id() == main  # no application: the main thread
        app = QCoreApplication([])
        assert [gui_thread_id(), gui_thread_id()] == [main, main]
        answer = []
        other = threading.Thread(target=lambda: answer.append(gui_thread_id()))
        other.start()
        other.join()
        assert answer == [main]
        print("ok")
        """
    )
    assert run_script(code).strip() == "ok"


def test_the_import_hooks_stay_while_patches_are_held_and_leave_with_the_hold() -> None:
    # The per-test switch (keep_installed() held) adds and removes no meta_path
    # finder per test; PySide6 imported between two tests is still picked up,
    # and sys.meta_path is as it was once the hold ends.
    code = textwrap.dedent(
        """
        import sys
        import loopwarden
        from loopwarden.qt.imports import PostImportHook
        from loopwarden.threads import thread_probes

        before = list(sys.meta_path)
        ours = lambda: [f for f in sys.meta_path if isinstance(f, PostImportHook)]
        with loopwarden.keep_installed():
            with loopwarden.guard(mode="record"):
                assert len(ours()) == 2, sys.meta_path  # the Qt probe's and the messages'
            kept = ours()
            assert len(kept) == 2, "kept while the hold lasts"
            with loopwarden.guard(mode="record"):
                assert ours() == kept  # the same finders, not removed and added again
            assert ours() == kept
            import PySide6.QtCore  # between two tests
            from PySide6.QtCore import QThread
            with loopwarden.guard(mode="record"):
                assert hasattr(QThread.__dict__["wait"], "__loopwarden_rule__")
                assert thread_probes, "the GUI-thread probe is registered"
        assert sys.meta_path == before, (sys.meta_path, before)
        assert not hasattr(QThread.__dict__["wait"], "__loopwarden_rule__")
        print("ok")
        """
    )
    assert run_script(code).strip() == "ok"


def test_the_qt_import_hook_is_compared_again_after_an_import_and_back_with_a_new_hold() -> None:
    # Qt modules with rules that the app never imports (QtSql, QtSerialPort...)
    # keep the GUI-thread import hook needed; a held switch compares sys.modules
    # with them only once a module was imported since. A module imported
    # between two switches is still patched, and a hold that ended took the
    # hook with it: the next hold's first switch puts it back.
    code = textwrap.dedent(
        """
        import sys
        import loopwarden
        import PySide6.QtCore
        from loopwarden.qt import gui_thread

        hook = gui_thread._import_hook
        with loopwarden.keep_installed():
            for _ in range(2):
                with loopwarden.guard(mode="record"):
                    assert hook in sys.meta_path
            from PySide6.QtNetwork import QAbstractSocket  # between two tests
            with loopwarden.guard(mode="record"):
                assert hasattr(QAbstractSocket.__dict__["waitForConnected"], "__loopwarden_rule__")
                assert hook in sys.meta_path
        assert hook not in sys.meta_path
        with loopwarden.keep_installed():
            with loopwarden.guard(mode="record"):
                assert hook in sys.meta_path, "the next hold's first switch installs it again"
                from PySide6.QtSql import QSqlQuery  # imported while guarded: patched
                assert hasattr(QSqlQuery.__dict__["exec"], "__loopwarden_rule__")
        print("ok")
        """
    )
    assert run_script(code).strip() == "ok"


def test_no_weak_reference_to_the_application_is_kept(qapp: QApplication) -> None:
    # A weak reference to the QApplication's Shiboken wrapper crashed the last
    # garbage collection at interpreter exit on 3.10 (the wrapper is freed without
    # its weak references cleared): loopwarden must hold none.
    import weakref

    before = weakref.getweakrefcount(qapp)
    with loopwarden.guard(mode="record"):
        gui_thread_id()
        in_qt_slot(lambda: gui_thread_id())
    gui_thread_id()
    assert weakref.getweakrefcount(qapp) == before
