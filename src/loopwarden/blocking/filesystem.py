"""Family ``filesystem``: opening, reading, writing, stat-ing and listing files."""

from __future__ import annotations

import io
import os
from typing import Any

from loopwarden import console_streams
from loopwarden.rules import Rule

__all__ = ["RULES"]

_FILE_IO = (
    "Run file I/O in a worker: `await asyncio.to_thread(...)` or "
    "`loop.run_in_executor(None, ...)`, or use aiofiles / anyio.Path; in Qt code "
    "move it to a QThread or QThreadPool."
)
_STAT = (
    "File-system metadata calls hit the disk (or a network mount). Use "
    "`await asyncio.to_thread(...)` or anyio.Path, or cache the result outside the loop."
)
_LISTING = (
    "Directory walks can take seconds on large trees. Run them in a worker: "
    "`await asyncio.to_thread(...)` or a QThreadPool task."
)
_CHANGE = (
    "Creating, moving and deleting files waits on the disk. Run it in a worker: "
    "`await asyncio.to_thread(...)`, anyio.Path or aiofiles.os."
)
_COPY = (
    "Copying or deleting trees can take a long time. Run it in a worker: "
    "`await asyncio.to_thread(shutil....)` or a QThread."
)


def _raw_file(stream: Any) -> io.FileIO | None:
    """The FileIO under a text or buffered stream, or None (BytesIO, sockets, ...)."""
    raw = stream
    if not isinstance(raw, io.FileIO):
        raw = getattr(raw, "buffer", raw)  # TextIOWrapper -> Buffered*
    if not isinstance(raw, io.FileIO):
        raw = getattr(raw, "raw", None)  # Buffered* -> FileIO
    return raw if isinstance(raw, io.FileIO) else None


def _is_console(stream: Any) -> bool:
    # The console streams (current and original) and their buffer and raw
    # layers, computed once per change of sys.stdout/stderr/stdin.
    return id(stream) in console_streams.layer_ids()


def _file_io_blocks(stream: Any, *_: object, **__: object) -> bool:
    """A read/write/flush blocks when the stream is backed by a real, blocking file.

    Writes to the current ``sys.stdout``/``sys.stderr`` and to terminals are
    not findings: printing and logging to the console are accepted. Streams
    in non-blocking mode never block.
    """
    if _is_console(stream):
        return False
    raw = _raw_file(stream)
    if raw is None or raw.closed:
        return False
    fd = raw.fileno()
    if not os.get_blocking(fd):
        return False
    return not raw.isatty()


def _flush_blocks(stream: Any, *_: object, **__: object) -> bool:
    # Flushing a read-only stream is a no-op.
    return _file_io_blocks(stream) and bool(stream.writable())


def _never(*_: object, **__: object) -> bool:
    return False


def _open_blocks(file: Any = None, *_: object, **__: object) -> bool:
    # Wrapping an already-open descriptor (open(fd)) does not touch the disk.
    return not isinstance(file, int)


def _rule(target: str, suggestion: str, **options: Any) -> Rule:
    return Rule(target=target, family="filesystem", suggestion=suggestion, **options)


_OPEN_RULES = (
    _rule("builtins:open", _FILE_IO, blocks_when=_open_blocks, condition="opening a path"),
    _rule("io:open_code", _FILE_IO),
    _rule("os:open", _FILE_IO),
)

_STAT_TARGETS = (
    "os:stat",
    "os:lstat",
    "os:access",
    "os:path.exists",
    "os:path.lexists",
    "os:path.isfile",
    "os:path.isdir",
    "os:path.islink",
    "os:path.ismount",
    "os:path.getsize",
    "os:path.getmtime",
    "os:path.getatime",
    "os:path.getctime",
    "os:path.samefile",
    "os:path.realpath",
)

_LISTING_TARGETS = (
    ("os:listdir", False),
    ("os:scandir", False),
    ("os:walk", True),
    ("os:fwalk", True),
    ("glob:glob", False),
    ("glob:iglob", True),
)

_CHANGE_TARGETS = (
    "os:mkdir",
    "os:makedirs",
    "os:rmdir",
    "os:removedirs",
    "os:remove",
    "os:unlink",
    "os:rename",
    "os:renames",
    "os:replace",
    "os:link",
    "os:symlink",
    "os:readlink",
    "os:chmod",
    "os:chown",
    "os:utime",
    "os:truncate",
    "os:fsync",
    "tempfile:mkstemp",
    "tempfile:mkdtemp",
)

_SHUTIL_TARGETS = (
    "shutil:copy",
    "shutil:copy2",
    "shutil:copyfile",
    "shutil:copymode",
    "shutil:copystat",
    "shutil:copytree",
    "shutil:move",
    "shutil:rmtree",
    "shutil:disk_usage",
)

#: pathlib.Path methods that touch the disk, and whether they return an iterator.
_PATH_METHODS = (
    ("open", False, _FILE_IO),
    ("read_text", False, _FILE_IO),
    ("read_bytes", False, _FILE_IO),
    ("write_text", False, _FILE_IO),
    ("write_bytes", False, _FILE_IO),
    ("exists", False, _STAT),
    ("is_file", False, _STAT),
    ("is_dir", False, _STAT),
    ("is_symlink", False, _STAT),
    ("is_mount", False, _STAT),
    ("stat", False, _STAT),
    ("lstat", False, _STAT),
    ("samefile", False, _STAT),
    ("resolve", False, _STAT),
    ("owner", False, _STAT),
    ("group", False, _STAT),
    ("iterdir", True, _LISTING),
    ("glob", True, _LISTING),
    ("rglob", True, _LISTING),
    ("walk", True, _LISTING),
    ("mkdir", False, _CHANGE),
    ("rmdir", False, _CHANGE),
    ("unlink", False, _CHANGE),
    ("rename", False, _CHANGE),
    ("replace", False, _CHANGE),
    ("touch", False, _CHANGE),
    ("chmod", False, _CHANGE),
    ("symlink_to", False, _CHANGE),
    ("hardlink_to", False, _CHANGE),
    ("readlink", False, _CHANGE),
)

_READS = ("read", "readinto", "readline", "readlines")
_BUFFERED_READS = (*_READS, "read1", "readinto1")
_WRITES = ("write", "writelines")
#: File-object methods that do I/O, per concrete io class (flush is added below).
_STREAM_METHODS: dict[str, tuple[str, ...]] = {
    "FileIO": (*_READS, "readall", *_WRITES),
    "BufferedReader": _BUFFERED_READS,
    "BufferedWriter": _WRITES,
    "BufferedRandom": (*_BUFFERED_READS, *_WRITES),
    "TextIOWrapper": (*_READS, *_WRITES),
}
_STREAM_CLASSES = tuple(_STREAM_METHODS)

RULES: tuple[Rule, ...] = (
    *_OPEN_RULES,
    *(_rule(target, _STAT) for target in _STAT_TARGETS),
    *(_rule(target, _LISTING, iterates=iterates) for target, iterates in _LISTING_TARGETS),
    *(_rule(target, _CHANGE) for target in _CHANGE_TARGETS),
    *(_rule(target, _COPY) for target in _SHUTIL_TARGETS),
    *(
        _rule(f"pathlib:Path.{method}", suggestion, iterates=iterates)
        for method, iterates, suggestion in _PATH_METHODS
    ),
    *(
        _rule(
            f"io:{cls}.{method}",
            _FILE_IO,
            blocks_when=_file_io_blocks,
            precheck=console_streams.precheck,
            condition="the stream is a real file in blocking mode (not the console or a TTY)",
        )
        for cls, methods in _STREAM_METHODS.items()
        for method in methods
    ),
    *(
        _rule(
            f"io:{cls}.flush",
            _FILE_IO,
            blocks_when=_flush_blocks,
            precheck=console_streams.precheck,
            condition="the stream is a writable real file in blocking mode",
        )
        # FileIO has no buffer and readers have nothing to flush.
        for cls in ("BufferedWriter", "BufferedRandom", "TextIOWrapper")
    ),
    # seek(), tell() and truncate() first write out what is buffered, through
    # the patched write()/flush(): those are checked inside them and named
    # "(via seek)", at the line that called seek().
    *(
        _rule(
            f"io:{cls}.{method}",
            _FILE_IO,
            blocks_when=_never,
            check_nested=True,
            condition="never itself: the buffered writes and flushes it makes are checked "
            "and reported as made via this method",
        )
        for cls in ("BufferedWriter", "BufferedRandom", "TextIOWrapper")
        for method in ("seek", "tell", "truncate")
    ),
    # close() flushes what the reported writes left in the buffer; checking it
    # (and the flushes inside it) again would report one write three times.
    *(
        _rule(
            f"io:{cls}.close",
            _FILE_IO,
            blocks_when=_never,
            condition="never: only keeps the flushes inside close() from being reported again",
        )
        for cls in _STREAM_CLASSES
    ),
)
