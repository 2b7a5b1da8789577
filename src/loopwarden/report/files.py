"""Writing report files safely: atomic, one per process, never through a symlink.

* :func:`write_atomic` writes a temporary file in the target's directory and
  renames it over the target (``os.replace``): a kill mid-write leaves the
  previous report intact, and an existing symlink at the path is replaced by
  the report itself, its target is never written.
* :func:`path_for_process` gives each process its own file when child
  processes inherit ``LOOPWARDEN_REPORT``: ``{pid}`` in the name is replaced
  by the process id; without it, a process other than the one that claimed
  the path writes ``name.pid<N>.ext`` beside it.
* :func:`check_writable` finds an unusable path at activation, not at exit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from loopwarden.config import ENV_REPORT_OWNER

__all__ = ["OWNER_VARIABLE", "check_writable", "path_for_process", "write_atomic"]

#: Set by loopwarden in the process that claims ``LOOPWARDEN_REPORT``: its pid.
#: Child processes inherit it and so know that the plain name is not theirs.
OWNER_VARIABLE = ENV_REPORT_OWNER


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parent directories are created).

    Text that is not valid Unicode (file names decoded with
    ``surrogateescape`` from a non-UTF-8 path) is written with backslash
    escapes instead of failing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8", "backslashreplace")
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a report is an ordinary file
        # Replaces the directory entry: a symlink there is replaced, not followed.
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def path_for_process(path: str, owner_pid: str | None, pid: int | None = None) -> str:
    """The report file this process writes for the configured ``path``.

    Args:
        path: The configured path; ``{pid}`` in it is replaced by ``pid``.
        owner_pid: The pid (as text) of the process that claimed the path
            (:data:`OWNER_VARIABLE`), or None if none did.
        pid: This process's id (default: ``os.getpid()``).
    """
    pid = os.getpid() if pid is None else pid
    if "{pid}" in path:
        return path.replace("{pid}", str(pid))
    if owner_pid is None or owner_pid == str(pid):
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.pid{pid}{ext}"


def check_writable(path: str) -> str | None:
    """Why a report could not be written at ``path``, or None if it can.

    Creates the parent directories and a temporary file beside the target
    (removed at once); the target itself is not touched.
    """
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        return "it is a directory"
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{os.fspath(ancestor)} is not a directory"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
