"""The file-object rules' C wrapper (``StreamMethod``) and the console state it reads.

read/write/flush of io's file types run through ``loopwarden._speedups.StreamMethod``
where the extension was built: off the loop, and for the console on a guarded
thread, the call is decided in C; every other call goes to the Python wrapper.
Here: it is what gets installed and the originals come back; it binds and raises
like the method; it leaks nothing on any path; a console replaced while the
patches are in (pytest's capture, a redirect) is seen at once, both ways; real
file I/O on the loop is still reported. The suite runs these rules in pure
Python too (tests/test_speedups.py).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import logging.handlers
import os
import socket
import sys
import types
import weakref
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from loophelpers import run_in_worker, run_on_loop
from loopwarden import console_streams, native
from rules_support import run_script

needs_speedups = pytest.mark.skipif(
    native.speedups is None, reason="the C extension is not built for this interpreter"
)

_METHODS = [
    (io.FileIO, "read"),
    (io.FileIO, "write"),
    (io.BufferedWriter, "write"),
    (io.BufferedWriter, "flush"),
    (io.TextIOWrapper, "write"),
    (io.TextIOWrapper, "flush"),
]


@needs_speedups
def test_the_file_rules_install_the_c_wrapper_and_restore_the_originals() -> None:
    originals = {(cls, name): cls.__dict__[name] for cls, name in _METHODS}
    with loopwarden.guard(mode="record"):
        for (cls, name), original in originals.items():
            wrapper = cls.__dict__[name]
            assert type(wrapper).__name__ == "StreamMethod", (cls, name)
            assert wrapper.__wrapped__ is original
            assert wrapper.__name__ == name
            assert "loopwarden stream wrapper of" in repr(wrapper)
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original


@needs_speedups
def test_the_c_wrapper_binds_and_raises_like_the_method(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    with loopwarden.guard(mode="record") as warden, open(path, "rb", buffering=0) as raw:
        bound = raw.read
        assert bound(2) == b"01"  # a bound method, called later
        assert io.FileIO.read(raw, 2) == b"23"  # through the class
        with pytest.raises(TypeError):
            raw.read(size=2)  # FileIO.read takes no keywords, and neither does the wrapper
        with pytest.raises(TypeError):
            io.FileIO.read()  # no file at all
        with pytest.raises(TypeError):
            io.FileIO.read(object(), 1)  # not a FileIO
        with pytest.raises(TypeError):
            raw.read(1, 2, 3)
    assert warden.findings == []  # all off the loop


def _console_to(tmp_path: Path, name: str) -> io.TextIOWrapper:
    return open(tmp_path / name, "w", encoding="utf-8")


def test_a_console_replaced_while_the_patches_are_in_is_seen_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The console is a real file here (as under a redirect): writes to it are
    # accepted; the same file once it is no longer the console is a finding.
    first, second = _console_to(tmp_path, "first"), _console_to(tmp_path, "second")
    try:
        with loopwarden.guard(mode="record") as warden:
            monkeypatch.setattr(sys, "stdout", first)
            run_on_loop(lambda: [print("to the first console") for _ in range(3)])
            assert warden.findings == []
            monkeypatch.setattr(sys, "stdout", second)  # the C wrapper's state is stale now
            # First the old console, before anything computed the state again.
            run_on_loop(lambda: (first.write("not the console any more\n"), first.flush()))
            reported = [f.primitive for f in warden.findings]
            warden.clear()
            run_on_loop(lambda: print("to the second console", flush=True))
            monkeypatch.undo()
        assert "io.TextIOWrapper.flush" in reported  # no longer the console: a real file
        assert warden.findings == []  # the new console is one
    finally:
        first.close()
        second.close()
    assert (tmp_path / "second").read_text() == "to the second console\n"


def test_console_verdicts_kept_between_calls_never_pass_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On 3.10 and 3.11 the C wrapper keeps the console check it last passed, and
    # the layers it found, while the sys dict is unchanged: files written between
    # console writes, and a console swapped for another and back, are judged anew.
    console, other = _console_to(tmp_path, "console"), _console_to(tmp_path, "other")
    try:
        with loopwarden.guard(mode="record") as warden:
            monkeypatch.setattr(sys, "stdout", console)

            def mixed() -> None:
                for _ in range(3):
                    print("to the console", flush=True)
                    other.write("to a file\n")
                    other.flush()

            run_on_loop(mixed)
            on_file = [f.primitive for f in warden.findings]
            warden.clear()
            monkeypatch.setattr(sys, "stdout", other)  # the file is the console now
            run_on_loop(lambda: print("to the new console", flush=True))
            as_console = list(warden.findings)
            monkeypatch.setattr(sys, "stdout", console)
            run_on_loop(lambda: (other.write("a file again\n"), other.flush()))
            again = [f.primitive for f in warden.findings]
            monkeypatch.undo()
    finally:
        console.close()
        other.close()
    assert "io.TextIOWrapper.flush" in on_file
    assert as_console == []
    assert "io.TextIOWrapper.flush" in again
    assert (tmp_path / "console").read_text() == "to the console\n" * 3


def test_file_io_on_the_loop_is_still_reported_and_not_off_it(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 100)

    def read() -> bytes:
        with open(path, "rb", buffering=0) as raw:
            return raw.read(10)

    with loopwarden.guard(mode="record") as warden:
        assert run_in_worker(read) == b"x" * 10
        assert warden.findings == []
        assert run_on_loop(read) == b"x" * 10
    assert "io.FileIO.read" in [f.primitive for f in warden.findings]


def test_the_console_state_is_replaced_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # The C wrapper reads the streams and the ids as one: a stale pair never mixes.
    before = list(console_streams.state)
    ids = console_streams.layer_ids()
    assert [ref() for ref in console_streams.state[:3]] == [sys.stdout, sys.stderr, sys.stdin]
    assert console_streams.state[3] is ids
    assert id(sys.__stderr__) in ids
    buffer = getattr(sys.__stderr__, "buffer", None)
    if buffer is not None:
        assert id(buffer) in ids
        raw = getattr(buffer, "raw", None)
        assert raw is None or id(raw) in ids
    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replacement)
    new_ids = console_streams.layer_ids()
    assert console_streams.state[1]() is replacement and id(replacement) in new_ids
    assert len(before) == len(console_streams.state) == 4


class _SlottedConsole:
    """A console replacement that takes no weak reference (``__slots__``)."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_a_console_that_takes_no_weak_reference_still_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = _SlottedConsole()
    monkeypatch.setattr(sys, "stdout", console)
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: print("to a slotted console"))
        assert id(console) in console_streams.layer_ids()
        assert console_streams.state[0] is None  # never current: Python decides each time
    assert warden.findings == []
    assert console.lines == ["to a slotted console", "\n"]


_EXIT_WITH_THE_PATCHES_IN = """
import asyncio, io, sys
import loopwarden

warden = loopwarden.activate(mode="record")

async def main():
    print("on the loop")

asyncio.run(main())
# A console that only loopwarden's state would keep alive once sys is torn down.
sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(sys.stdout.fileno(), "w", closefd=False)))
asyncio.run(main())
print("findings:", len(warden.findings))
"""


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_the_interpreter_exits_cleanly_with_the_patches_in(
    pure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dev build never deactivates: the wrappers die with the io types at exit.
    # The C wrapper held the console streams, and freed the last one there (a crash).
    monkeypatch.setenv("LOOPWARDEN_PURE_PYTHON", "1" if pure else "")
    monkeypatch.setenv("PYTHONPATH", str(Path(loopwarden.__file__).parent.parent))
    output = run_script(_EXIT_WITH_THE_PATCHES_IN)  # asserts the exit status is 0
    assert output.splitlines() == ["on the loop", "on the loop", "findings: 0"]


@needs_speedups
def test_no_reference_is_leaked_on_any_path(tmp_path: Path) -> None:
    # A missed Py_DECREF in C shows as a reference count that grows with the
    # number of calls; each path runs 2000 times.
    rounds = 2000
    path = tmp_path / "data"
    path.write_bytes(b"x" * 10)
    console = _console_to(tmp_path, "console")
    raw = open(path, "rb", buffering=0)

    def counts() -> tuple[int, ...]:
        return (sys.getrefcount(raw), sys.getrefcount(console), sys.getrefcount(sys.stdout))

    def reads() -> None:
        for _ in range(rounds):
            raw.seek(0)
            raw.read(1)

    def prints() -> None:
        for _ in range(rounds):
            print("x", file=console)
            console.flush()

    async def on_loop() -> list[str]:
        problems = []
        loop = asyncio.get_running_loop()
        prints()  # warm-up
        before, loop_before = counts(), sys.getrefcount(loop)
        prints()  # the console, decided in C
        if counts() != before or sys.getrefcount(loop) - loop_before > 2:
            problems.append(f"console writes: {before} -> {counts()}")
        return problems

    try:
        with loopwarden.guard(mode="record") as warden:
            reads()
            before = counts()
            reads()  # off the loop
            assert counts() == before, "off the loop"
            old_stdout = sys.stdout
            sys.stdout = console
            try:
                assert asyncio.run(on_loop()) == []
            finally:
                sys.stdout = old_stdout

            async def files() -> None:
                reads()  # not the console: the Python wrapper, findings

            before = counts()
            asyncio.run(files())
            assert counts()[0] - before[0] < rounds, "reported reads"
        assert warden.findings  # the reads on the loop were reported
    finally:
        raw.close()
        console.close()


@needs_speedups
def test_the_socket_rules_install_the_c_wrapper_and_decide_non_blocking_sockets() -> None:
    originals = {name: vars(socket.socket).get(name) for name in ("send", "recv")}
    blocking, non_blocking = socket.socketpair()

    class OddSocket(socket.socket):
        def gettimeout(self) -> Any:
            return "not a number"  # the C path cannot tell: the Python wrapper decides

    async def on_loop() -> list[str]:
        problems = []
        loop = asyncio.get_running_loop()
        non_blocking.setblocking(False)
        for _ in range(100):  # warm-up
            blocking.send(b"x")
            non_blocking.recv(1)
        before = (sys.getrefcount(non_blocking), sys.getrefcount(loop))
        for _ in range(2000):
            blocking.send(b"x")  # a blocking socket with room to write: not reported
            non_blocking.recv(1)  # non-blocking: decided in C
        after = (sys.getrefcount(non_blocking), sys.getrefcount(loop))
        if after[0] != before[0] or after[1] - before[1] > 2:
            problems.append(f"references: {before} -> {after}")
        with pytest.raises(BlockingIOError):
            non_blocking.recv(1)  # nothing to read: the original's own error
        odd = OddSocket(fileno=os.dup(non_blocking.fileno()))
        with odd:
            odd.setblocking(False)
            blocking.send(b"y")
            assert odd.recv(1) == b"y"
        return problems

    with blocking, non_blocking, loopwarden.guard(mode="record") as warden:
        for name in originals:
            wrapper = vars(socket.socket)[name]
            assert type(wrapper).__name__ == "StreamMethod", name
            assert wrapper.__wrapped__ is getattr(socket.socket.__mro__[1], name)
        assert asyncio.run(on_loop()) == []
    assert warden.findings == []
    assert {name: vars(socket.socket).get(name) for name in originals} == originals


def test_the_python_wrapper_is_used_for_python_originals() -> None:
    # Only a C method gets the C wrapper: a Python function keeps a Python one.
    def write(stream: Any, data: str) -> int:
        return len(data)

    made = console_streams.c_wrapper(write, write, [])
    assert made is None
    if native.speedups is not None:
        c_made = console_streams.c_wrapper(io.FileIO.write, write, [])
        assert c_made is not None and type(c_made).__name__ == "StreamMethod"
    assert os.path.exists(console_streams.__file__)


def test_a_dead_console_reference_is_never_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sys.stdout set to None after the stream the state names has died: a dead
    # weak reference also gives None, yet the state's ids are stale (and free
    # for reuse). A file whose id is in them must be checked, not let through.
    class Gone(io.StringIO):
        pass

    gone = Gone()
    dead = weakref.ref(gone)
    del gone
    assert dead() is None
    path = tmp_path / "data"
    with open(path, "w", encoding="utf-8") as file, loopwarden.guard(mode="record") as warden:
        monkeypatch.setattr(sys, "stdout", None)
        console_streams.state[:] = [
            dead,
            weakref.ref(sys.stderr),
            weakref.ref(sys.stdin),
            frozenset({id(file), id(file.buffer), id(file.buffer.raw)}),
        ]
        run_on_loop(lambda: (file.write("x"), file.flush()))
        monkeypatch.undo()
    assert "io.TextIOWrapper.flush" in [f.primitive for f in warden.findings]
    assert id(file) not in console_streams.layer_ids()


def test_a_ctrl_c_in_a_sockets_gettimeout_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Python gettimeout() (a socket subclass) that is interrupted: the
    # KeyboardInterrupt comes out of the call, as from an unpatched one, and
    # the call does not happen.
    class Interrupted(socket.socket):
        calls = 0

        def gettimeout(self) -> Any:
            # Once, as a real Ctrl-C lands once: asked again, the socket answers.
            Interrupted.calls += 1
            if Interrupted.calls == 1:
                raise KeyboardInterrupt
            return super().gettimeout()

    left, right = socket.socketpair()
    odd = Interrupted(fileno=os.dup(left.fileno()))
    sent: list[int] = []
    with left, right, odd, loopwarden.guard(mode="record"):

        def send() -> None:
            sent.append(odd.send(b"x"))

        with pytest.raises(KeyboardInterrupt):
            run_on_loop(send)
    assert sent == []


# -- logging's Handler.handle: a console record decided in C ------------------------------


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"loopwarden.tests.stream_method.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


@needs_speedups
def test_handler_handle_gets_the_c_wrapper_and_its_original_back() -> None:
    original = logging.Handler.__dict__["handle"]
    with loopwarden.guard(mode="record"):
        wrapper = logging.Handler.__dict__["handle"]
        assert type(wrapper).__name__ == "StreamMethod"
        assert wrapper.__wrapped__ is original
        assert inspect.signature(wrapper) == inspect.signature(original)
    assert logging.Handler.__dict__["handle"] is original


def test_console_records_pass_and_file_records_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = _console_to(tmp_path, "console")
    elsewhere = _console_to(tmp_path, "elsewhere")
    handler = logging.StreamHandler(console)
    logger = _logger("console", handler)
    try:
        with loopwarden.guard(mode="record") as warden:
            monkeypatch.setattr(sys, "stderr", console)
            # The first record teaches the kind; the next ones are decided in C.
            run_on_loop(lambda: [logger.info("to the console %d", n) for n in range(3)])
            assert warden.findings == []
            assert console_streams.handler_kinds.get(logging.StreamHandler) is True
            # The same handler on a real file: the kind is known, the stream is not the console.
            handler.setStream(elsewhere)
            run_on_loop(lambda: logger.info("to a file"))
            reported = [f.primitive for f in warden.findings]
            monkeypatch.undo()
        assert "logging.Handler.handle" in reported
    finally:
        console.close()
        elsewhere.close()
    assert (tmp_path / "console").read_text().count("to the console") == 3
    assert (tmp_path / "elsewhere").read_text() == "to a file\n"


def test_a_handler_that_writes_no_file_passes_and_a_file_handler_is_reported(
    tmp_path: Path,
) -> None:
    memory = logging.handlers.MemoryHandler(capacity=100)
    to_file = logging.FileHandler(tmp_path / "app.log")
    try:
        with loopwarden.guard(mode="record") as warden:
            run_on_loop(lambda: [_logger("memory", memory).info("kept") for _ in range(3)])
            assert warden.findings == []
            assert console_streams.handler_kinds.get(logging.handlers.MemoryHandler) is False
            assert logging.FileHandler not in console_streams.handler_kinds
            run_on_loop(lambda: [_logger("file", to_file).info("written") for _ in range(2)])
        assert [f.primitive for f in warden.findings] == ["logging.Handler.handle"]
        assert len(memory.buffer) == 3
    finally:
        memory.close()
        to_file.close()


class _OddStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler whose ``stream`` property raises what it is told to, once."""

    error: BaseException | None = None

    @property  # type: ignore[override]
    def stream(self) -> Any:
        error, self.error = self.error, None
        if error is not None:
            raise error  # once: a wrapper that swallowed it would read a stream next time
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def test_a_ctrl_c_in_a_handlers_stream_reaches_the_caller_and_an_error_is_judged() -> None:
    handler = _OddStream()
    logger = _logger("odd", handler)
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: logger.info("kind learnt"))  # the kind: a StreamHandler
        handler.error = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            run_on_loop(lambda: logger.info("interrupted"))
        handler.error = ValueError("no stream today")
        # An Exception: the Python path decides (and logging reports its own error).
        run_on_loop(lambda: logger.info("odd"))
    assert warden.findings == []


def test_handler_kinds_stay_bounded() -> None:
    kinds = console_streams.handler_kinds
    made = [type(f"Handler{n}", (logging.NullHandler,), {}) for n in range(300)]
    with loopwarden.guard(mode="record"):
        run_on_loop(lambda: [_logger(f"made{n}", kind()).info("x") for n, kind in enumerate(made)])
    assert 0 < len(kinds) <= 256


def test_console_records_leak_no_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    console = _console_to(tmp_path, "console")
    handler = logging.StreamHandler(console)
    logger = _logger("leak", handler)
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "x", (), None)
    try:
        with loopwarden.guard(mode="record") as warden:
            monkeypatch.setattr(sys, "stderr", console)

            def counts() -> tuple[int, int, int]:
                for _ in range(1000):
                    handler.handle(record)
                return sys.getrefcount(handler), sys.getrefcount(console), sys.getrefcount(record)

            run_on_loop(counts)  # the kind is learnt, the console state computed
            first = run_on_loop(counts)
            assert run_on_loop(counts) == first
            monkeypatch.undo()
        assert warden.findings == []
    finally:
        console.close()


@pytest.mark.skipif(native.speedups is None, reason="the C extension is not built here")
@pytest.mark.parametrize("what", ["selector.select", "lock.acquire", "file.write"])
def test_a_bound_c_wrapper_can_be_weakly_referenced(what: str, tmp_path: Any) -> None:
    # weakref.WeakMethod (signal libraries hold slots this way) takes a weak reference
    # to the bound method's function: a C wrapper that binds to itself, here.
    import selectors
    import threading

    with loopwarden.guard(mode="record"), open(tmp_path / "f.txt", "w") as f:
        if what == "selector.select":  # a Python function unguarded: WeakMethod works there
            selector = selectors.DefaultSelector()
            method = selector.select
        elif what == "lock.acquire":
            method = threading.Lock().acquire
        else:
            method = f.write
        assert type(method) is types.MethodType  # the C wrapper, bound to itself
        assert type(method.__func__).__module__ == "loopwarden._speedups"
        weak = weakref.WeakMethod(method)
        assert weak() == method
        if what == "selector.select":
            assert weak()(0) == []  # type: ignore[misc]
            selector.close()


def _console_method(state: list[Any]) -> Any:
    """A C StreamMethod over ``state`` on a guarded thread: "original" when it finds
    the stream a console layer, "slow" when the Python wrapper would decide."""
    assert native.speedups is not None
    loop = object()  # any object: "a loop runs here"
    return native.speedups.StreamMethod(
        original=lambda stream, *args: "original",
        slow=lambda stream, *args: "slow",
        running_loop=lambda: loop,
        probes={},
        wardens=[object()],
        console=state,
        sys_dict=vars(sys),
        check_timeout=False,
    )


@needs_speedups
def test_the_kept_console_check_follows_the_state_items_and_is_whole_while_one_is_freed() -> None:
    # The C console test keeps the state it last found current (3.10, 3.11): the
    # same ids next to other references is another state, and what freeing the
    # old state's items runs already sees the new one (found in review).
    make = _console_method
    current = [weakref.ref(sys.stdout), weakref.ref(sys.stderr), weakref.ref(sys.stdin)]
    other = io.StringIO()
    ids = frozenset({id(sys.stdout), id(other)})
    good, stale = [*current, ids], [weakref.ref(other), *current[1:], ids]
    assert (make(stale)(other), make(good)(other), make(stale)(other)) == (
        "slow",
        "original",
        "slow",
    )
    state = [*current, frozenset({id(other)})]
    method = make(state)
    assert method(other) == "original"
    state[0] = weakref.ref(other)  # one reference replaced, the ids kept
    assert method(other) == "slow"

    nested: list[str] = []

    class RunsWhenFreed:
        def __del__(self) -> None:
            nested.append(method(other))

    state[:] = [*current, frozenset({id(other), RunsWhenFreed()})]
    assert method(other) == "original"  # kept, with `other` among the layers seen
    state[:] = [*current, frozenset({id(sys.stdout)})]
    method(sys.stdout)  # found current: the old set is freed, and its item runs
    assert nested == ["slow"]  # `other` is no layer of the new state
    assert method(other) == "slow"


@needs_speedups
def test_a_console_state_shortened_while_its_old_items_are_freed_is_not_read_past() -> None:
    current = [weakref.ref(sys.stdout), weakref.ref(sys.stderr), weakref.ref(sys.stdin)]
    state: list[Any] = [*current, frozenset()]
    method = _console_method(state)

    class ShortensWhenFreed:
        def __del__(self) -> None:
            del state[1:]

    state[:] = [*current, frozenset({id(sys.stdout), ShortensWhenFreed()})]
    assert method(sys.stdout) == "original"  # kept: the set with the item is the cache's now
    state[:] = [*current, frozenset({id(sys.stdout)})]
    assert method(sys.stdout) == "slow"  # the old set freed on the way: the list is 1 long
    assert len(state) == 1
