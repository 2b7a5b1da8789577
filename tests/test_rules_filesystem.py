"""Every filesystem rule fires on the loop thread and stays silent off it."""

from __future__ import annotations

import asyncio
import glob
import io
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

import loopwarden
from loophelpers import run_in_executor_from_loop, run_in_worker, run_on_loop
from loopwarden.blocking import filesystem
from loopwarden.registry import _resolve

Action = Callable[[], object]


def _tree(tmp: pathlib.Path) -> pathlib.Path:
    (tmp / "d" / "sub").mkdir(parents=True)
    (tmp / "d" / "sub" / "leaf.txt").write_text("leaf")
    (tmp / "f.txt").write_text("one\ntwo\n")
    return tmp


def _text(tmp: pathlib.Path, mode: str = "r") -> Any:
    return open(tmp / "f.txt", mode)


def _binary(tmp: pathlib.Path, cls: type, mode: str) -> Any:
    raw = io.FileIO(tmp / "f.txt", mode)
    if cls is io.FileIO:
        return raw
    return cls(raw) if cls is not io.BufferedRandom else io.BufferedRandom(raw)


def _stream_action(cls_name: str, method: str) -> Callable[[pathlib.Path], Action]:
    def prepare(tmp: pathlib.Path) -> Action:
        cls = getattr(io, cls_name)
        writing = method.startswith("write") or method == "flush"
        if cls is io.TextIOWrapper:
            stream = _text(tmp, "r+" if writing else "r")
        else:
            mode = "r+" if cls is io.BufferedRandom or (cls is io.FileIO and writing) else "r"
            if cls is io.BufferedWriter:
                mode = "w"
            stream = _binary(tmp, cls, mode)
        payload: Any = "x" if cls is io.TextIOWrapper else b"x"
        args: dict[str, tuple[Any, ...]] = {
            "read": (),
            "read1": (),
            "readall": (),
            "readinto": (bytearray(4),),
            "readinto1": (bytearray(4),),
            "readline": (),
            "readlines": (),
            "write": (payload,),
            "writelines": ([payload],),
            "flush": (),
        }
        if method == "flush":
            stream.write(payload)  # off the loop: something to flush
        # Look the method up at call time, as real code does.
        return lambda: getattr(stream, method)(*args[method])

    return prepare


def _plain(action: Callable[[pathlib.Path], object]) -> Callable[[pathlib.Path], Action]:
    return lambda tmp: lambda: action(tmp)


def _consume(iterator_factory: Callable[[pathlib.Path], Any]) -> Callable[[pathlib.Path], Action]:
    return lambda tmp: lambda: list(iterator_factory(tmp))


P = pathlib.Path
#: How to make each call for real. Every filesystem rule must have an entry.
CALLS: dict[str, Callable[[pathlib.Path], Action]] = {
    "builtins.open": _plain(lambda t: open(t / "f.txt").close()),
    "io.open_code": _plain(lambda t: io.open_code(str(t / "f.txt")).close()),
    "os.open": _plain(lambda t: os.close(os.open(t / "f.txt", os.O_RDONLY))),
    "os.stat": _plain(lambda t: os.stat(t)),
    "os.lstat": _plain(lambda t: os.lstat(t)),
    "os.access": _plain(lambda t: os.access(t, os.R_OK)),
    "os.path.exists": _plain(lambda t: os.path.exists(t)),
    "os.path.lexists": _plain(lambda t: os.path.lexists(t)),
    "os.path.isfile": _plain(lambda t: os.path.isfile(t / "f.txt")),
    "os.path.isdir": _plain(lambda t: os.path.isdir(t)),
    "os.path.islink": _plain(lambda t: os.path.islink(t)),
    "os.path.ismount": _plain(lambda t: os.path.ismount(t)),
    "os.path.getsize": _plain(lambda t: os.path.getsize(t / "f.txt")),
    "os.path.getmtime": _plain(lambda t: os.path.getmtime(t)),
    "os.path.getatime": _plain(lambda t: os.path.getatime(t)),
    "os.path.getctime": _plain(lambda t: os.path.getctime(t)),
    "os.path.samefile": _plain(lambda t: os.path.samefile(t, t)),
    "os.path.realpath": _plain(lambda t: os.path.realpath(t / "d")),
    "os.listdir": _plain(lambda t: os.listdir(t)),
    "os.scandir": _plain(lambda t: os.scandir(t).close()),
    "os.walk": _consume(lambda t: os.walk(t)),
    "os.fwalk": _consume(lambda t: os.fwalk(t)),
    "glob.glob": _plain(lambda t: glob.glob(str(t / "*"))),
    "glob.iglob": _consume(lambda t: glob.iglob(str(t / "*"))),
    "os.mkdir": _plain(lambda t: os.mkdir(t / "new")),
    "os.makedirs": _plain(lambda t: os.makedirs(t / "a" / "b")),
    "os.rmdir": _plain(lambda t: os.rmdir(t / "d" / "sub2")),
    "os.removedirs": _plain(lambda t: os.removedirs(t / "d" / "sub2")),
    "os.remove": _plain(lambda t: os.remove(t / "f.txt")),
    "os.unlink": _plain(lambda t: os.unlink(t / "f.txt")),
    "os.rename": _plain(lambda t: os.rename(t / "f.txt", t / "g.txt")),
    "os.renames": _plain(lambda t: os.renames(t / "f.txt", t / "x" / "g.txt")),
    "os.replace": _plain(lambda t: os.replace(t / "f.txt", t / "g.txt")),
    "os.link": _plain(lambda t: os.link(t / "f.txt", t / "hard.txt")),
    "os.symlink": _plain(lambda t: os.symlink(t / "f.txt", t / "soft.txt")),
    "os.readlink": _plain(lambda t: os.readlink(t / "link")),
    "os.chmod": _plain(lambda t: os.chmod(t / "f.txt", 0o644)),
    "os.chown": _plain(lambda t: os.chown(t / "f.txt", os.getuid(), os.getgid())),
    "os.utime": _plain(lambda t: os.utime(t / "f.txt")),
    "os.truncate": _plain(lambda t: os.truncate(t / "f.txt", 1)),
    "os.fsync": lambda t: (lambda fd: lambda: os.fsync(fd))(os.open(t / "f.txt", os.O_RDWR)),
    "tempfile.mkstemp": _plain(lambda t: os.close(tempfile.mkstemp(dir=t)[0])),
    "tempfile.mkdtemp": _plain(lambda t: tempfile.mkdtemp(dir=t)),
    "shutil.copy": _plain(lambda t: shutil.copy(t / "f.txt", t / "c.txt")),
    "shutil.copy2": _plain(lambda t: shutil.copy2(t / "f.txt", t / "c.txt")),
    "shutil.copyfile": _plain(lambda t: shutil.copyfile(t / "f.txt", t / "c.txt")),
    "shutil.copymode": _plain(lambda t: shutil.copymode(t / "f.txt", t / "d" / "sub" / "leaf.txt")),
    "shutil.copystat": _plain(lambda t: shutil.copystat(t / "f.txt", t / "d" / "sub" / "leaf.txt")),
    "shutil.copytree": _plain(lambda t: shutil.copytree(t / "d", t / "d2")),
    "shutil.move": _plain(lambda t: shutil.move(t / "f.txt", t / "moved.txt")),
    "shutil.rmtree": _plain(lambda t: shutil.rmtree(t / "d")),
    "shutil.disk_usage": _plain(lambda t: shutil.disk_usage(t)),
    "pathlib.Path.open": _plain(lambda t: (t / "f.txt").open().close()),
    "pathlib.Path.read_text": _plain(lambda t: (t / "f.txt").read_text()),
    "pathlib.Path.read_bytes": _plain(lambda t: (t / "f.txt").read_bytes()),
    "pathlib.Path.write_text": _plain(lambda t: (t / "w.txt").write_text("x")),
    "pathlib.Path.write_bytes": _plain(lambda t: (t / "w.txt").write_bytes(b"x")),
    "pathlib.Path.exists": _plain(lambda t: (t / "f.txt").exists()),
    "pathlib.Path.is_file": _plain(lambda t: (t / "f.txt").is_file()),
    "pathlib.Path.is_dir": _plain(lambda t: t.is_dir()),
    "pathlib.Path.is_symlink": _plain(lambda t: t.is_symlink()),
    "pathlib.Path.is_mount": _plain(lambda t: t.is_mount()),
    "pathlib.Path.stat": _plain(lambda t: t.stat()),
    "pathlib.Path.lstat": _plain(lambda t: t.lstat()),
    "pathlib.Path.samefile": _plain(lambda t: t.samefile(t)),
    "pathlib.Path.resolve": _plain(lambda t: (t / "d").resolve()),
    "pathlib.Path.owner": _plain(lambda t: t.owner()),
    "pathlib.Path.group": _plain(lambda t: t.group()),
    "pathlib.Path.iterdir": _consume(lambda t: t.iterdir()),
    "pathlib.Path.glob": _consume(lambda t: t.glob("*")),
    "pathlib.Path.rglob": _consume(lambda t: t.rglob("*")),
    "pathlib.Path.walk": _consume(lambda t: t.walk()),  # type: ignore[attr-defined]
    "pathlib.Path.mkdir": _plain(lambda t: (t / "m").mkdir()),
    "pathlib.Path.rmdir": _plain(lambda t: (t / "d" / "sub2").rmdir()),
    "pathlib.Path.unlink": _plain(lambda t: (t / "f.txt").unlink()),
    "pathlib.Path.rename": _plain(lambda t: (t / "f.txt").rename(t / "r.txt")),
    "pathlib.Path.replace": _plain(lambda t: (t / "f.txt").replace(t / "r.txt")),
    "pathlib.Path.touch": _plain(lambda t: (t / "touched").touch()),
    "pathlib.Path.chmod": _plain(lambda t: (t / "f.txt").chmod(0o644)),
    "pathlib.Path.symlink_to": _plain(lambda t: (t / "s2").symlink_to(t / "f.txt")),
    "pathlib.Path.hardlink_to": _plain(lambda t: (t / "h2").hardlink_to(t / "f.txt")),
    "pathlib.Path.readlink": _plain(lambda t: (t / "link").readlink()),
}
for _cls, _methods in filesystem._STREAM_METHODS.items():
    for _method in (*_methods, *(("flush",) if "write" in _methods and _cls != "FileIO" else ())):
        CALLS[f"io.{_cls}.{_method}"] = _stream_action(_cls, _method)

#: Rules that never report themselves: close() keeps its flushes from being
#: reported again; seek()/tell()/truncate() name the flushes they make
#: (tests/test_flush_attribution.py).
QUIET = {rule.name for rule in filesystem.RULES if rule.condition.startswith("never")}
APPLICABLE = [
    rule.name for rule in filesystem.RULES if rule.name not in QUIET and _resolve(rule) is not None
]


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    _tree(tmp_path)
    (tmp_path / "d" / "sub2").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "f.txt")
    return tmp_path


def test_every_rule_has_a_real_call() -> None:
    missing = sorted(set(APPLICABLE) - set(CALLS))
    assert not missing, f"add a real call for: {missing}"


def _primitives(warden: loopwarden.Warden) -> list[str]:
    return [finding.primitive for finding in warden.findings]


@pytest.mark.parametrize("name", APPLICABLE)
def test_fires_on_the_loop_thread(name: str, tree: pathlib.Path) -> None:
    action = CALLS[name](tree)
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(action)
    assert name in _primitives(warden), _primitives(warden)
    finding = next(f for f in warden.findings if f.primitive == name)
    assert finding.family == "filesystem"
    assert finding.caller.startswith(__file__)
    assert finding.suggestion


@pytest.mark.parametrize("name", APPLICABLE)
def test_raise_mode_raises_at_the_call(name: str, tree: pathlib.Path) -> None:
    action = CALLS[name](tree)
    with loopwarden.guard(mode="raise") as warden, pytest.raises(loopwarden.BlockingCallError):
        run_on_loop(action)
    assert warden.findings


@pytest.mark.parametrize("name", APPLICABLE)
def test_silent_in_a_worker_thread(name: str, tree: pathlib.Path) -> None:
    action = CALLS[name](tree)
    with loopwarden.guard(mode="raise") as warden:
        run_in_worker(action)
    assert warden.findings == []


@pytest.mark.parametrize("name", APPLICABLE)
def test_silent_through_to_thread(name: str, tree: pathlib.Path) -> None:
    action = CALLS[name](tree)
    with loopwarden.guard(mode="raise") as warden:
        run_in_executor_from_loop(action)
    assert warden.findings == []


def test_printing_and_in_memory_streams_are_silent(capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> None:
        print("hello from the loop")
        sys.stderr.write("to stderr\n")
        sys.stdout.flush()
        buffer = io.BytesIO(b"abc")
        buffer.read()
        io.StringIO("x").read()

    with loopwarden.guard(mode="raise") as warden:
        run_on_loop(work)
    assert warden.findings == []
    assert "hello from the loop" in capsys.readouterr().out


def test_non_blocking_pipe_is_silent() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    reader = open(read_fd, "rb", buffering=0)  # open(fd) itself does not touch the disk
    os.write(write_fd, b"data")
    try:
        with loopwarden.guard(mode="raise") as warden:
            data = run_on_loop(lambda: reader.read(4))
        assert data == b"data"
        assert warden.findings == []
    finally:
        reader.close()
        os.close(write_fd)


def test_a_blocking_pipe_is_reported(tmp_path: pathlib.Path) -> None:
    read_fd, write_fd = os.pipe()
    reader = open(read_fd, "rb", buffering=0)
    os.write(write_fd, b"data")
    try:
        with loopwarden.guard(mode="record") as warden:
            run_on_loop(lambda: reader.read(4))
        assert _primitives(warden) == ["io.FileIO.read"]
    finally:
        reader.close()
        os.close(write_fd)


def test_reading_a_file_in_a_with_block_reports_each_call_once(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "data.txt"
    target.write_text("payload")

    def work() -> str:
        with open(target) as handle:
            return handle.read()

    with loopwarden.guard(mode="record") as warden:
        assert run_on_loop(work) == "payload"
    assert _primitives(warden) == ["builtins.open", "io.TextIOWrapper.read"]


def test_writing_a_file_reports_open_and_write_but_not_the_flushes_of_close(
    tmp_path: pathlib.Path,
) -> None:
    def work() -> None:
        with open(tmp_path / "out.txt", "w") as handle:
            handle.write("x")

    with loopwarden.guard(mode="record") as warden:
        run_on_loop(work)
    assert _primitives(warden) == ["builtins.open", "io.TextIOWrapper.write"]


def test_pathlib_reports_the_pathlib_method_not_its_internals(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_text("x")
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: (tmp_path / "f").read_text())
    assert _primitives(warden) == ["pathlib.Path.read_text"]


def test_os_walk_is_reported_once_for_the_whole_walk(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: list(os.walk(tmp_path)))
    assert _primitives(warden) == ["os.walk"]


def test_async_file_io_through_to_thread_is_the_fix(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")

    async def main() -> str:
        return await asyncio.to_thread(target.read_text)

    with loopwarden.guard(mode="raise") as warden:
        assert asyncio.run(main()) == "x"
    assert warden.findings == []


CONSOLE_TO_FILES = """
import asyncio, logging, sys
import loopwarden

logging.basicConfig(level=logging.INFO, stream=sys.stderr)

async def main():
    print("printed on the loop", flush=True)
    sys.stdout.buffer.write(b"bytes on the loop\\n")
    sys.stdout.buffer.flush()
    logging.info("logged on the loop")
    sys.stderr.flush()
    try:
        data.write("x")  # a real file: still a finding
    except loopwarden.BlockingCallError as error:
        print("caught:", error.finding.primitive, flush=True)

with open("data.txt", "w") as data, loopwarden.guard(mode="raise") as warden:
    asyncio.run(main())
print("findings:", sorted({f.primitive for f in warden.findings}), flush=True)
"""


def test_console_redirected_to_files_is_silent_at_every_layer(tmp_path: pathlib.Path) -> None:
    # stdout and stderr are real files here: print and logging cross the
    # TextIOWrapper, BufferedWriter and FileIO layers of the console, and
    # none of them is a finding; a file the app opens itself still is.
    (tmp_path / "app.py").write_text(CONSOLE_TO_FILES)
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        import subprocess

        result = subprocess.run(
            [sys.executable, "app.py"], cwd=tmp_path, stdout=out, stderr=err, timeout=60
        )
    output, errors = out_path.read_text(), err_path.read_text()
    assert result.returncode == 0, errors
    assert "printed on the loop" in output and "bytes on the loop" in output
    assert "logged on the loop" in errors
    assert "caught: io.TextIOWrapper.write" in output
    assert output.split("findings:")[1].strip() == "['io.TextIOWrapper.write']"


def test_a_stream_stops_counting_as_console_once_sys_stdout_is_restored(
    tmp_path: pathlib.Path,
) -> None:
    import contextlib

    with (tmp_path / "log.txt").open("w") as log:
        with loopwarden.guard(mode="record") as warden:
            with contextlib.redirect_stdout(log):
                run_on_loop(lambda: print("to the console, which is a file now"))
            assert warden.findings == []
            run_on_loop(lambda: log.write("to the file, no longer the console"))
        assert [f.primitive for f in warden.findings] == ["io.TextIOWrapper.write"]
