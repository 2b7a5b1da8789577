"""Where a callback was scheduled: findings in callbacks with no user frame.

``loop.call_soon(time.sleep, 0.1)``, ``loop.call_later(1, os.fsync, fd)``,
``fut.add_done_callback(shutil.rmtree)``, ``QTimer.singleShot(0, os.sync)``:
the primitive's only caller is the loop's machinery, so the stack says nothing
about the code responsible. While the patches are installed, the scheduling
methods in :data:`SCHEDULERS` are wrapped (:class:`loopwarden.wraps.Wrap`):
when a warden is active, on a guarded thread (a running asyncio loop, or a
thread with a probe such as the Qt GUI thread), user code that schedules a
callback that is *not* user code itself (a builtin, a ``functools.partial``,
a standard-library function, one of loopwarden's own wrappers) gets the
callback replaced by a :class:`Scheduled` trampoline holding the scheduling
site: file, line, function and the scheduler used.

When a blocking call is made inside such a callback, the trampoline's frame
stands between the primitive and the loop. :mod:`loopwarden.frames` gives it
its own category: stacks end there with the scheduling site as their
outermost frame, the finding's ``user_caller`` is that site, scope filters see
its module, and allowances naming the scheduling function cover the callback
(see :func:`loopwarden.frames.scheduled_site`).

Cost (see docs/performance.md): on threads that are not guarded, and with no
warden active, one check before the original; on a guarded thread one type
test of the callback; only a callback that needs a site pays a frame lookup
and the trampoline. A callback that is a user function is never wrapped: its
own frame names the code responsible.

Equality: a trampoline compares equal to its callback, so
``fut.remove_done_callback(fn)`` still finds ``fn``.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from loopwarden import engine, native
from loopwarden import frames as _frames
from loopwarden.c_wrappers import c_wrappable, c_wrapper_types, like_python_wrapper
from loopwarden.findings import StackFrame
from loopwarden.threads import running_loop, thread_probes
from loopwarden.wraps import Wrap

__all__ = ["SCHEDULERS", "WRAPS", "Scheduled"]

#: (target, where the callback is among the call's positional arguments,
#: counting ``self``; -1: the last one) of every wrapped scheduler.
SCHEDULERS: tuple[tuple[str, int], ...] = (
    ("asyncio.base_events:BaseEventLoop.call_soon", 1),
    ("asyncio.base_events:BaseEventLoop.call_soon_threadsafe", 1),
    ("asyncio.base_events:BaseEventLoop.call_later", 2),
    ("asyncio.base_events:BaseEventLoop.call_at", 2),
    ("_asyncio:Future.add_done_callback", 1),
    ("asyncio.futures:_PyFuture.add_done_callback", 1),  # (Future is _asyncio.Future in C)
    ("uvloop:Loop.call_soon", 1),
    ("uvloop:Loop.call_soon_threadsafe", 1),
    ("uvloop:Loop.call_later", 2),
    ("uvloop:Loop.call_at", 2),
    ("qasync:_QEventLoop.call_soon", 1),
    ("qasync:_QEventLoop.call_soon_threadsafe", 1),
    ("qasync:_QEventLoop.call_later", 2),
    ("qasync:_QEventLoop.call_at", 2),
    ("PySide6.QtAsyncio.events:QAsyncioEventLoop.call_soon", 1),
    ("PySide6.QtAsyncio.events:QAsyncioEventLoop.call_soon_threadsafe", 1),
    ("PySide6.QtAsyncio.events:QAsyncioEventLoop.call_later", 2),
    ("PySide6.QtAsyncio.events:QAsyncioEventLoop.call_at", 2),
    ("PySide6.QtCore:QTimer.singleShot", -1),
)

#: Callables that are never user code: a blocking call inside them would name
#: only the loop's machinery.
_PLAIN_CALLABLES = (
    types.BuiltinFunctionType,  # time.sleep, bound builtin methods (sock.recv)
    types.MethodWrapperType,
    types.MethodDescriptorType,
    functools.partial,
    staticmethod,  # loopwarden's replacement of a builtin module function
)
_FUTURE_TYPES: tuple[type, ...] = ()
_OWN_PREFIX = "loopwarden."


class Scheduled:
    """A callback with the place that scheduled it (it calls the callback, nothing more).

    Attributes:
        callback: The callback given to the scheduler.
        site: The scheduling call: file, line, function and module.
        via: The scheduler, e.g. ``"loop.call_soon"`` or ``"QTimer.singleShot"``.
    """

    __slots__ = ("__weakref__", "callback", "site", "via")

    def __init__(self, callback: Callable[..., Any], site: StackFrame, via: str) -> None:
        self.callback = callback
        self.site = site
        self.via = via

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callback (this frame stands for the scheduling site in findings)."""
        __tracebackhide__ = True  # pytest: show the callback, not the trampoline
        return self.callback(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Scheduled):
            other = other.callback
        return bool(self.callback == other)

    def __hash__(self) -> int:
        return hash(self.callback)

    def __repr__(self) -> str:
        return repr(self.callback)


_frames.register_scheduled(Scheduled.__call__.__code__)


_SITE_CATEGORIES = frozenset({_frames.STDLIB, _frames.HIDDEN})
_FunctionType = types.FunctionType
_MethodType = types.MethodType


def _needs_site(callback: object) -> bool:
    """True for a callback whose own frames would not name the code responsible."""
    kind = type(callback)
    if kind is _MethodType:
        callback = callback.__func__  # type: ignore[attr-defined]
        kind = type(callback)
        if kind in c_wrapper_types():
            # A bound method of a C wrapper (``future.set_result``): what runs
            # is its Python wrapper's decision, whose frames are hidden.
            callback = callback.python_wrapper  # type: ignore[attr-defined]
            kind = type(callback)
    if kind is _FunctionType:
        code = callback.__code__  # type: ignore[attr-defined]
        info = _frames._cache.get(code) or _frames.classify(code, callback.__globals__)  # type: ignore[attr-defined]
        return info.category in _SITE_CATEGORIES
    if not isinstance(callback, _PLAIN_CALLABLES):
        return False  # a callable object, a Task step, a Qt signal: leave it alone
    # A Task's wake-up is a bound builtin of the Task: asyncio's own business.
    owner = getattr(callback, "__self__", None)
    return not isinstance(owner, _future_types())


def _future_types() -> tuple[type, ...]:
    global _FUTURE_TYPES
    if not _FUTURE_TYPES:
        import asyncio

        _FUTURE_TYPES = (asyncio.Future,)
    return _FUTURE_TYPES


def _site_of(frame: types.FrameType | None) -> StackFrame | None:
    """The scheduling call as a stack frame, if it is user code."""
    info = None
    while frame is not None:
        info = _frames.classify(frame.f_code, frame.f_globals)
        if not info.module.startswith(_OWN_PREFIX):
            break
        frame = frame.f_back  # another loopwarden wrapper of the same method
    if frame is None or info is None:
        return None
    code = frame.f_code
    if info.category != _frames.USER:
        return None  # the standard library, a tool or loopwarden: nothing to name
    return StackFrame(code.co_filename, frame.f_lineno, info.qualname, info.module)


def _via(target: str) -> str:
    name = target.partition(":")[2]
    owner, _, method = name.rpartition(".")
    if method.startswith("call_"):
        return f"loop.{method}"
    return f"{owner.lstrip('_')}.{method}"


def _around(position: int) -> Callable[[str, Callable[..., Any]], Callable[..., Any]]:
    def around(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        via = _via(f":{name}")
        # Closure cells: faster than module globals on the hot path.
        wardens = engine.active_wardens
        loop_of_this_thread = running_loop
        probes = thread_probes
        get_ident = threading.get_ident
        getframe = sys._getframe
        needs_site = _needs_site
        trim = _frames.trim_source_traceback
        least = max(position, 0) + 1  # positional arguments the callback needs

        def schedule(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # pytest: the caller's line, even for the original's errors
            if (
                not wardens
                or len(args) < least
                or (loop_of_this_thread() is None and (not probes or get_ident() not in probes))
            ):
                return original(*args, **kwargs)
            index = position if position >= 0 else len(args) - 1
            callback = args[index]
            try:
                site = _site_of(getframe(1)) if needs_site(callback) else None
            except Exception:  # noqa: BLE001 - never break the host's scheduling
                site = None  # (and the original below is called once, raising or not)
            if site is not None:
                args = (*args[:index], Scheduled(callback, site, via), *args[index + 1 :])
            return trim(original(*args, **kwargs))  # debug mode: a handle made "here"

        schedule.__name__ = getattr(original, "__name__", schedule.__name__)
        schedule.__qualname__ = getattr(original, "__qualname__", schedule.__qualname__)
        schedule.__wrapped__ = original  # type: ignore[attr-defined]
        return _c_schedule(original, schedule, position) or schedule

    return around


def _c_schedule(
    original: Any, schedule: Callable[..., Any], position: int
) -> Callable[..., Any] | None:
    """The C ``ScheduleMethod`` over ``schedule``, or None (pure Python, or not for it).

    Nearly every call of a loop's scheduler is asyncio's own (a Task's step,
    a future's wake-up: two per qasync loop turn, as its call_soon calls
    call_later): in C, each call ``schedule`` passes through untouched is
    passed through with no Python frame. Methods only (``QTimer.singleShot``,
    a static method with its callback last, keeps the Python wrapper).
    """
    speedups = native.speedups
    if speedups is None or position < 1 or not c_wrappable(original):
        return None
    try:
        made = speedups.ScheduleMethod(
            original,
            schedule,
            position,
            engine.active_wardens,
            running_loop,
            thread_probes,
            _PLAIN_CALLABLES,
            _future_types(),
            _frames._cache,
            _SITE_CATEGORIES,
        )
    except Exception:  # noqa: BLE001 - an incompatible extension: the Python wrapper
        return None
    return like_python_wrapper(made, schedule, original)


WRAPS: tuple[Wrap, ...] = tuple(Wrap(target, _around(pos)) for target, pos in SCHEDULERS)
