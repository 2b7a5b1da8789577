"""Qt signals connected to bound methods of the C-wrapped primitives.

The C wrappers (``LockMethod``, ``StreamMethod``, ``MarkMethod``, ``LoopMethod``)
sit in class dicts as method descriptors. PySide6's signal manager takes a bound
method's function for a Python function and reads its code: a bound method whose
function was the C object crashed the interpreter at ``connect()``
(``signal.connect(file.write)``, ``finished.connect(future.set_result)``). PySide6's
connect and disconnect now get a bound method of the Python wrapper (or the C object
binds to it); every other caller keeps the C path. Each case
runs in its own interpreter, so that a crash fails one test instead of the suite.
"""

from __future__ import annotations

import textwrap

import pytest

from loopwarden import native
from rules_support import run_script

pytestmark = pytest.mark.timeout(60)

_PRELUDE = """
import asyncio, io, logging, os, socket, sys, threading
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import loopwarden
from PySide6.QtCore import QCoreApplication, QObject, Signal
app = QCoreApplication([])

class Source(QObject):
    text = Signal(str)
    data = Signal(bytes)
    anything = Signal(object)
    bare = Signal()
    relay = Signal()
"""

_CASES = {
    "file write (StreamMethod)": """
        path = os.path.join(TMP, "out.txt")
        with open(path, "w") as f, loopwarden.guard(mode="record") as warden:
            src = Source()
            src.text.connect(f.write)
            src.text.emit("through a signal\\n")
            f.flush()
        assert open(path).read() == "through a signal\\n"
        # emit() on the GUI thread runs its slot as event handling: a real file is written.
        assert "io.TextIOWrapper.write" in [f.primitive for f in warden.findings]
    """,
    "file write through QTimer.singleShot and QObject.connect": """
        from PySide6.QtCore import QTimer, SIGNAL
        path = os.path.join(TMP, "out.txt")
        with open(path, "w") as f, loopwarden.guard(mode="record"):
            QTimer.singleShot(0, f.flush)  # a delay of 0: only called by Qt
            src = Source()
            QObject.connect(src, SIGNAL("text(QString)"), f.write)
            src.text.emit("old style\\n")
            assert QObject.disconnect(src, SIGNAL("text(QString)"), f.write)
            src.text.emit("not connected any more\\n")
            src.text.connect(f.write)
            assert src.text.disconnect(f.write)  # the same slot as connected
            f.flush()
        assert open(path).read() == "old style\\n"
    """,
    "socket send (StreamMethod)": """
        a, b = socket.socketpair()
        with loopwarden.guard(mode="record"):
            src = Source()
            src.data.connect(a.send)
            src.data.emit(b"ping")
        assert b.recv(4) == b"ping"
    """,
    "lock acquire (LockMethod)": """
        lock = threading.Lock()
        with loopwarden.guard(mode="record"):
            src = Source()
            src.bare.connect(lock.acquire)
            src.bare.emit()
        assert lock.locked()
    """,
    "Handler.handle (StreamMethod)": """
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        record = logging.LogRecord("x", logging.INFO, "app.py", 1, "via a signal", (), None)
        with loopwarden.guard(mode="record"):
            src = Source()
            src.anything.connect(handler.handle)
            src.anything.emit(record)
        assert stream.getvalue() == "via a signal\\n"
    """,
    "Future.set_result (LoopMethod)": """
        async def main():
            future = asyncio.get_running_loop().create_future()
            src = Source()
            src.anything.connect(future.set_result)
            src.anything.emit(42)
            return await future
        with loopwarden.guard(mode="record") as warden:
            assert asyncio.run(main()) == 42
        assert warden.findings == []
    """,
    "QTimer.stop (OwnerMethod)": """
        from PySide6.QtCore import QTimer
        with loopwarden.guard(mode="record") as warden:
            timer = QTimer()
            timer.start(60_000)
            src = Source()
            src.bare.connect(timer.stop)  # the QObject wrapper binds to itself
            src.bare.emit()
            assert not timer.isActive()
            timer.start(60_000)
            assert src.bare.disconnect(timer.stop)
            src.bare.emit()
            assert timer.isActive()
            timer.stop()
        assert warden.findings == []
    """,
    # Connected in C++, not through connect(): PySide6 reads the bound method's
    # function's __code__ itself (it crashed on a C wrapper's bound method).
    "QTimer.singleShot(5, timer.stop) (OwnerMethod)": """
        from PySide6.QtCore import QTimer
        with loopwarden.guard(mode="record") as warden:
            timer = QTimer()
            timer.start(60_000)
            QTimer.singleShot(5, timer.stop)
            QTimer.singleShot(40, app.quit)
            app.exec()
            assert not timer.isActive()
        assert warden.findings == []
    """,
    "QTimer(timeout=timer.stop) (OwnerMethod)": """
        from PySide6.QtCore import QTimer
        with loopwarden.guard(mode="record") as warden:
            timer = QTimer()
            timer.start(60_000)
            trigger = QTimer(timeout=timer.stop)
            trigger.setSingleShot(True)
            trigger.start(0)
            QTimer.singleShot(40, app.quit)
            app.exec()
            assert not timer.isActive()
        assert warden.findings == []
    """,
    "QTimer.singleShot(5, loop.stop) (LoopMethod)": """
        from PySide6.QtCore import QTimer
        loop = asyncio.new_event_loop()
        with loopwarden.guard(mode="record"):
            QTimer.singleShot(5, loop.stop)
            QTimer.singleShot(40, app.quit)
            app.exec()
        loop.close()
    """,
    "QTimer.singleShot(5, file.flush) (StreamMethod)": """
        from PySide6.QtCore import QTimer
        path = os.path.join(TMP, "out.txt")
        with open(path, "w") as f, loopwarden.guard(mode="record"):
            f.write("flushed by a timer\\n")
            QTimer.singleShot(5, f.flush)
            QTimer.singleShot(40, app.quit)
            app.exec()
            assert open(path).read() == "flushed by a timer\\n"
    """,
    "signal relay (MarkMethod)": """
        seen = []
        with loopwarden.guard(mode="record"):
            src = Source()
            src.relay.connect(lambda: seen.append("relayed"))
            src.bare.connect(src.relay.emit)  # signal to signal
            src.bare.emit()
            assert src.bare.disconnect(src.relay.emit)
            src.bare.emit()
            src.bare.connect(slot=src.relay.emit)
            src.bare.emit()
        assert seen == ["relayed", "relayed"]
    """,
}


@pytest.mark.parametrize("implementation", ["c", "python"])
@pytest.mark.parametrize("case", sorted(_CASES))
def test_a_signal_connected_to_a_bound_wrapped_method(
    case: str, implementation: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    if implementation == "python":
        monkeypatch.setenv("LOOPWARDEN_PURE_PYTHON", "1")
    code = _PRELUDE + f"TMP = {str(tmp_path)!r}\n" + textwrap.dedent(_CASES[case]) + "print('ok')\n"
    assert run_script(code).strip() == "ok"


@pytest.mark.skipif(native.speedups is None, reason="the C extension is not built here")
def test_how_each_c_wrapper_binds() -> None:
    # The lock, file and asyncio wrappers bind to themselves (C callers look them up
    # bound: `with lock:`, print(), asyncio's C Task calling loop.call_soon); the others
    # bind to their Python wrapper; PySide6 gets a bound method of a Python function
    # either way.
    code = textwrap.dedent(
        """
        import asyncio, io, logging, threading, types
        import loopwarden
        from loopwarden.qt import dispatch
        with loopwarden.guard(mode="record"):
            stream = io.TextIOWrapper(io.BytesIO())
            c_write = io.TextIOWrapper.__dict__["write"]
            assert type(c_write).__name__ == "StreamMethod"
            assert stream.write.__func__ is c_write  # stays in C for print()
            lock_type = type(threading.Lock())
            assert threading.Lock().__enter__.__func__ is lock_type.__dict__["__enter__"]
            for_qt = dispatch._for_qt(stream.write)
            assert isinstance(for_qt.__func__, types.FunctionType)
            assert for_qt.__func__ is c_write.python_wrapper
            assert for_qt.__func__.__wrapped__ is c_write.__wrapped__
            assert for_qt.__func__.__name__ == "write"
            assert for_qt("x") == 1
            handler = logging.StreamHandler(io.StringIO())
            assert isinstance(handler.handle.__func__, types.FunctionType)
            loop = asyncio.new_event_loop()
            future = loop.create_future()
            c_set_result = asyncio.Future.__dict__["set_result"]
            assert type(c_set_result).__name__ == "LoopMethod"
            assert future.set_result.__func__ is c_set_result  # stays in C for asyncio's C code
            assert dispatch._for_qt(future.set_result).__func__ is c_set_result.python_wrapper
            assert isinstance(c_set_result.python_wrapper, types.FunctionType)
            loop.close()
            from PySide6.QtCore import QCoreApplication, QTimer
            app = QCoreApplication.instance() or QCoreApplication([])
            timer = QTimer()
            c_stop = QTimer.__dict__["stop"]
            assert type(c_stop).__name__ == "OwnerMethod"
            assert timer.stop.__func__ is c_stop  # a QObject's methods always bind
            assert dispatch._for_qt(timer.stop).__func__ is c_stop.python_wrapper
            assert c_write.__get__(None, io.TextIOWrapper) is c_write
        print("ok")
        """
    )
    assert run_script(code).strip() == "ok"
