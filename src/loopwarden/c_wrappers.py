"""Helpers for the C wrappers of :mod:`loopwarden._speedups` that stand for Python ones.

Several wrappers have a C twin that decides the common call (on the loop's own
thread, an event loop's own QObject, a callback that needs no scheduling site)
and hands every other call to the Python wrapper. The twin must look like the
Python wrapper to introspection, and may only stand where the Python wrapper's
kind of callable is not part of what the class promises.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from types import FunctionType, MethodDescriptorType
from typing import Any

__all__ = ["c_wrapper_types", "c_wrappable", "give_code", "like_python_wrapper"]


#: The C extension's wrapper types (a bound method of one has a C object as
#: ``__func__``, and its ``python_wrapper`` decides as it does); filled on first use.
_C_WRAPPER_NAMES = (
    "LockMethod",
    "StreamMethod",
    "MarkMethod",
    "LoopMethod",
    "OwnerMethod",
    "ScheduleMethod",
    "InstanceHook",
)
_c_wrapper_types: frozenset[type] | None = None


def c_wrapper_types() -> frozenset[type]:
    """The C wrapper types of :mod:`loopwarden._speedups` (empty in pure Python)."""
    global _c_wrapper_types
    if _c_wrapper_types is None:
        from loopwarden import native

        speedups = native.speedups
        _c_wrapper_types = frozenset(
            getattr(speedups, name) for name in _C_WRAPPER_NAMES if hasattr(speedups, name)
        )
    return _c_wrapper_types


def c_wrappable(original: Any) -> bool:
    """Whether a C wrapper may stand for a Python wrapper of ``original``.

    For a C method, one of loopwarden's own C wrappers (a rule over a
    scheduling wrap), and a Python function that is no coroutine function
    (``inspect.iscoroutinefunction`` must keep answering for the class's
    methods, and a C object is never one).
    """
    if isinstance(original, FunctionType):
        return not (inspect.iscoroutinefunction(original) or inspect.isasyncgenfunction(original))
    if isinstance(original, MethodDescriptorType):
        return True
    return type(original).__module__ == "loopwarden._speedups"


def like_python_wrapper(
    made: Callable[..., Any], python_wrapper: Callable[..., Any], original: Any
) -> Callable[..., Any]:
    """``made``, a C wrapper, given the names, ``__wrapped__`` and docstring of the Python one.

    So that ``inspect.signature`` and help() find the original, and the
    registry finds the rule (``__loopwarden_rule__``).
    """
    for name in ("__name__", "__qualname__", "__module__", "__wrapped__", "__loopwarden_rule__"):
        if hasattr(python_wrapper, name):
            setattr(made, name, getattr(python_wrapper, name))
    if isinstance(original, FunctionType):
        made.__doc__ = original.__doc__  # (not from C methods: see engine.make_wrapper)
    give_code(made, python_wrapper)
    return made


def give_code(made: Any, python_wrapper: Any) -> None:
    """Give ``made``, a C wrapper, the code object of its Python wrapper.

    PySide6 takes the function of a bound method for a Python function and
    reads its ``__code__`` (argument count, flags); without one it crashed the
    interpreter. Its ``connect`` and ``disconnect`` are handed the Python
    wrapper (:func:`loopwarden.qt.dispatch._for_qt`), but ``QTimer.singleShot``
    with a delay and a signal given as a constructor keyword
    (``QTimer(timeout=timer.stop)``) connect in C++. A real attribute, in the
    object's ``__dict__``: PySide6 keeps the pointer it reads. The code takes
    ``*args, **kwargs``, so PySide6 passes every argument of the signal on.
    (``inspect`` does not take the object for a function: no ``__defaults__``.)
    """
    code = getattr(python_wrapper, "__code__", None)
    if code is not None:
        with contextlib.suppress(AttributeError, TypeError):  # a wrapper without a __dict__
            made.__code__ = code
