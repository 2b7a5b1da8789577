"""Walking the caller's stack: who made the call, and is it excused?

Each code object is classified once and cached, so a walk costs one dict
lookup per frame. Nothing here runs off the guarded threads.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import CodeType, FrameType, FunctionType
from typing import Any

from loopwarden.findings import StackFrame

__all__ = [
    "FrameInfo",
    "capture_stack",
    "classify",
    "is_own_code",
    "is_stdlib_file",
    "nearest_own_frame",
    "own_code",
    "set_own_code",
    "trim_source_traceback",
]

# Categories of a frame.
STDLIB = 0  # standard library: look further out for the code responsible
TOOL = 1  # a development tool (pytest, pluggy, coverage, debuggers, loopwarden)
USER = 2  # anything else: the application, its libraries, the tests
HIDDEN = 3  # loopwarden's own wrapper frames: never shown, never responsible
SCHEDULED = 4  # a callback's trampoline: stands for the code that scheduled it

#: Top-level packages whose frames excuse a call when they are the nearest
#: frame outside the standard library: their I/O is the tool's, not the app's.
TOOL_PACKAGES = frozenset(
    {
        "_pytest",
        "pytest",
        "pluggy",
        "pytest_asyncio",
        "pytestqt",
        "xdist",
        "execnet",
        "pytest_timeout",
        "pytest_cov",
        "pytest_benchmark",
        "pytest_loopwarden",
        "coverage",
        "pydevd",
        "_pydevd_bundle",
        "_pydev_bundle",
        "_pydevd_frame_eval",
        "pydevd_plugins",
        "debugpy",
        "shibokensupport",  # PySide6's import hook stats and reads source on every import
        "_hypothesis_pytestplugin",
        "loopwarden",
    }
)

#: Modules inside the loopwarden package whose frames are *not* tool frames:
#: the demo blocks on purpose.
_UNEXCUSED_OWN_MODULES = ("loopwarden.demo",)

#: Libraries inside a tool that tests call as an API, like the standard
#: library's: pytest's py.path (the ``tmpdir`` fixture's ``LocalPath``, vendored
#: as ``_pytest._py``, once the ``py`` package). Their I/O is the caller's.
_TOOL_LIBRARIES = ("_pytest._py.", "py._path.")

#: loopwarden modules whose frames sit between the blocking call and its caller.
_HIDDEN_MODULES = frozenset(
    {"loopwarden.engine", "loopwarden.qt.dispatch", "loopwarden.affinity.checks"}
)

#: Modules whose frames dispatch events like a loop's callback dispatcher:
#: Qt runs a test-driven slot inside loopwarden.qt.dispatch's wrappers.
_DISPATCH_MODULES = frozenset({"loopwarden.qt.dispatch"})

_STDLIB_DIRS: tuple[str, ...] = tuple(
    sorted(
        {
            os.path.normcase(os.path.realpath(p)) + os.sep
            for p in (
                sysconfig.get_paths().get("stdlib"),
                sysconfig.get_paths().get("platstdlib"),
                os.path.dirname(os.__file__),
            )
            if p
        }
    )
)
_SITE_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def is_stdlib_file(filename: str) -> bool:
    """True for files of the standard library (frozen modules included)."""
    if filename.startswith("<frozen "):
        return True
    if not os.path.isabs(filename):
        return False
    # os.path.realpath would stat the disk; normcase is pure string work.
    path = os.path.normcase(filename)
    if any(marker in path for marker in _SITE_MARKERS):
        return False
    return path.startswith(_STDLIB_DIRS)


class FrameInfo:
    """Classification of one code object (cached)."""

    __slots__ = ("boundary", "category", "excused", "key", "module", "qualname")

    def __init__(self, category: int, module: str, qualname: str) -> None:
        self.category = category
        #: Filled in lazily by the engine: does a default allowance cover it?
        self.excused: bool | None = None
        self.module = module
        self.qualname = qualname
        self.key = f"{module}:{qualname}"
        #: The event loop's callback dispatcher: frames further out are the
        #: loop's own machinery, the same for every finding, so stacks stop here.
        self.boundary = (
            self.key in _LOOP_DISPATCH or module in _DISPATCH_MODULES or category == SCHEDULED
        )


_LOOP_DISPATCH = frozenset({"asyncio.events:Handle._run", "asyncio.events:_run"})

_cache: dict[CodeType, FrameInfo] = {}


def _qualname(code: CodeType, f_globals: dict[str, Any] | None = None) -> str:
    qualname = getattr(code, "co_qualname", None)  # co_qualname: Python 3.11+
    if isinstance(qualname, str):
        return qualname
    if f_globals is not None:
        found = _qualname_from_globals(code, f_globals)
        if found is not None:
            return found
    return code.co_name


def _qualname_from_globals(code: CodeType, f_globals: dict[str, Any]) -> str | None:
    """Python 3.10: find the function or method of ``code`` in its module.

    Allowances name methods (``"threading:Thread.start"``), which a bare
    ``co_name`` cannot match. Runs once per code object (results are cached);
    nested functions are not found and keep their ``co_name``.
    """
    for value in list(f_globals.values()):
        candidates = vars(value).values() if isinstance(value, type) else (value,)
        for candidate in list(candidates):
            if isinstance(candidate, (staticmethod, classmethod)):
                candidate = candidate.__func__
            elif isinstance(candidate, property):
                candidate = candidate.fget
            # Plain functions only: no attribute access on arbitrary objects
            # (lazy proxies in module globals could import on access).
            if isinstance(candidate, FunctionType) and candidate.__code__ is code:
                return candidate.__qualname__
    return None


#: Code objects of :class:`loopwarden.scheduling.Scheduled` trampolines.
_scheduled_codes: set[CodeType] = set()


def register_scheduled(code: CodeType) -> None:
    """Give frames of ``code`` (a trampoline's ``__call__``) the category SCHEDULED."""
    _scheduled_codes.add(code)
    info = _cache.get(code)
    if info is not None:
        info.category = SCHEDULED
        info.boundary = True


def scheduled_site(frame: FrameType | None) -> Any:
    """The :class:`~loopwarden.scheduling.Scheduled` whose trampoline ``frame`` runs, or None.

    It has ``site`` (a :class:`StackFrame`: where the callback was scheduled)
    and ``via`` (the scheduler). Read from the frame's ``self``; off the hot path.
    """
    if frame is None or frame.f_code not in _scheduled_codes:
        return None
    trampoline = frame.f_locals.get("self")
    return trampoline if isinstance(getattr(trampoline, "site", None), StackFrame) else None


def _categorize(code: CodeType, module: str) -> int:
    if code in _scheduled_codes:
        return SCHEDULED
    if module in _HIDDEN_MODULES:
        return HIDDEN
    if module.startswith(_TOOL_LIBRARIES):
        return STDLIB  # look further out, to the test that called it
    top = module.partition(".")[0]
    if top in TOOL_PACKAGES and not module.startswith(_UNEXCUSED_OWN_MODULES):
        return TOOL
    if top.startswith("pytest_"):
        return TOOL  # pytest plugins by naming convention
    if is_stdlib_file(code.co_filename):
        return STDLIB
    return USER


def classify(code: CodeType, f_globals: dict[str, Any]) -> FrameInfo:
    """Classify a code object (cached by code object)."""
    info = _cache.get(code)
    if info is None:
        module = f_globals.get("__name__") or "?"
        if not isinstance(module, str):
            module = "?"
        info = FrameInfo(_categorize(code, module), module, _qualname(code, f_globals))
        _cache[code] = info
    return info


def capture_stack(frame: FrameType | None, limit: int = 200) -> tuple[StackFrame, ...]:
    """Capture frames from ``frame`` outwards, outermost first, hiding our own.

    Once a frame outside the standard library has been seen, the capture stops
    at the event loop's callback dispatcher (asyncio's ``Handle._run``): what
    lies further out is loop machinery. (A primitive the loop calls directly,
    ``loop.call_soon(time.sleep, 1)``, keeps the whole stack, down to the code
    that runs the loop.) Walking frames
    is the dominant cost of recording a finding on Python 3.11+, where every
    ``f_back`` materialises a frame object.
    """
    # Hot when findings pour in: one cached dict lookup per frame, and named
    # tuples built with tuple.__new__ (StackFrame(...) runs Python-level code).
    cache_get = _cache.get
    make = tuple.__new__
    frames: list[StackFrame] = []
    append = frames.append
    remaining = limit
    seen_own_code = False
    while frame is not None and remaining:
        code = frame.f_code
        info = cache_get(code)
        if info is None:
            info = classify(code, frame.f_globals)
        if info.category == SCHEDULED:
            # A callback with no user frame: its scheduling site is the outermost
            # frame that matters (what lies further out is loop machinery).
            scheduled = scheduled_site(frame)
            if scheduled is not None:
                append(scheduled.site)
                break
        elif info.boundary and seen_own_code:
            break
        if info.category != HIDDEN:
            append(make(StackFrame, (code.co_filename, frame.f_lineno, info.qualname, info.module)))
            remaining -= 1
            seen_own_code = seen_own_code or info.category != STDLIB
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


# -- the user's own code: where a finding names the place to fix ------------------

#: Packages that are the user's code (``--block-detect-scope``); empty: any
#: code outside the standard library, site-packages and the tools.
_own_packages: tuple[str, ...] = ()
#: Directories the user's code lives in (pytest's rootdir); empty: anywhere.
_own_roots: tuple[str, ...] = ()


def set_own_code(packages: tuple[str, ...] = (), roots: tuple[str, ...] = ()) -> None:
    """Say what the user's own code is (the pytest plugin: scope and rootdir).

    A finding names the nearest frame of the user's own code as the place to
    fix (``Finding.user_caller``) and the library frame that blocked beside it
    (``Finding.library_caller``). With ``packages``, own code is those
    packages; otherwise it is code outside the standard library, outside
    site-packages and, with ``roots``, under one of those directories.
    Call it without arguments to go back to the default.
    """
    global _own_packages, _own_roots
    _own_packages = tuple(packages)
    _own_roots = tuple(os.path.normcase(os.path.abspath(r)).rstrip(os.sep) + os.sep for r in roots)


def own_code() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The current ``(packages, roots)`` given to :func:`set_own_code`."""
    return _own_packages, _own_roots


def is_own_code(filename: str, module: str) -> bool:
    """True if a frame of ``module`` in ``filename`` is the user's own code."""
    if _own_packages:
        return any(module == pkg or module.startswith(pkg + ".") for pkg in _own_packages)
    if is_stdlib_file(filename) or not os.path.isabs(filename):
        return False
    path = os.path.normcase(filename)
    if any(marker in path for marker in _SITE_MARKERS):
        return False
    return not _own_roots or path.startswith(_own_roots)


def nearest_own_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame from ``frame`` outwards that is the user's own code.

    Like stacks in findings, the walk ends at the event loop's callback
    dispatcher: beyond it lies the code that started the loop, which is not
    where the blocking callback came from. Tool frames are never own code.
    Off the hot path: runs once per finding.
    """
    f = frame
    while f is not None:
        info = classify(f.f_code, f.f_globals)
        if info.boundary:
            return None
        if info.category == USER and is_own_code(f.f_code.co_filename, info.module):
            return f
        f = f.f_back
    return None


def frame_label(frame: FrameType) -> str:
    """``"path:line in func"`` for one frame (a trampoline: where it was scheduled)."""
    scheduled = scheduled_site(frame)
    if scheduled is not None:
        return str(scheduled.site)
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {_qualname(code)}"


def current_frame(depth: int) -> FrameType | None:
    """``sys._getframe(depth + 1)`` that returns None instead of raising."""
    try:
        return sys._getframe(depth + 1)
    except ValueError:
        return None


_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def trim_source_traceback(made: Any) -> Any:
    """``made`` with loopwarden's frames taken off the end of its ``_source_traceback``.

    In asyncio's debug mode a task, future or handle records where it was
    created (shown in its repr, "Task was destroyed but it is pending!" and
    slow-callback warnings), and the loop drops only its own creating frame:
    a Python wrapper of ours between the caller and ``create_task`` or
    ``call_soon`` was left as the place of creation. Returns ``made``.
    """
    recorded = getattr(made, "_source_traceback", None)
    if isinstance(recorded, list):
        while recorded and str(getattr(recorded[-1], "filename", "")).startswith(_OWN_DIR):
            del recorded[-1]
    return made
