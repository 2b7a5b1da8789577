"""Qt signals connected to bound methods of the C-wrapped primitives.

The C wrappers (``LockMethod``, ``StreamMethod``, ``MarkMethod``, ``LoopMethod``)
sit in class dicts as method descriptors. PySide6's signal manager takes a bound
method's function for a Python function and reads its code: a bound method whose
function was the C object crashed the interpreter at ``connect()``
(``signal.connect(file.write)``, ``finished.connect(future.set_result)``). A bound
method is now one of the Python wrapper; a direct call keeps the C path. Each case
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
def test_a_bound_method_is_one_of_the_python_wrapper_and_a_direct_call_stays_in_c() -> None:
    code = textwrap.dedent(
        """
        import io, types, loopwarden
        original = io.TextIOWrapper.__dict__["write"]
        with loopwarden.guard(mode="record"):
            c_wrapper = io.TextIOWrapper.__dict__["write"]
            assert type(c_wrapper).__name__ == "StreamMethod"
            stream = io.TextIOWrapper(io.BytesIO())
            bound = stream.write
            assert isinstance(bound, types.MethodType)
            assert isinstance(bound.__func__, types.FunctionType)  # the Python wrapper
            assert bound.__func__ is c_wrapper.python_wrapper
            assert bound.__func__.__wrapped__ is original
            assert bound.__func__.__name__ == "write"
            assert c_wrapper.__get__(None, io.TextIOWrapper) is c_wrapper
            assert bound("x") == 1 and stream.write("y") == 1
        print("ok")
        """
    )
    assert run_script(code).strip() == "ok"
