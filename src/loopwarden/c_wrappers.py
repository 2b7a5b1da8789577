"""Helpers for the C wrappers of :mod:`loopwarden._speedups` that stand for Python ones.

Several wrappers have a C twin that decides the common call (on the loop's own
thread, an event loop's own QObject, a callback that needs no scheduling site)
and hands every other call to the Python wrapper. The twin must look like the
Python wrapper to introspection, and may only stand where the Python wrapper's
kind of callable is not part of what the class promises.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import FunctionType, MethodDescriptorType
from typing import Any

__all__ = ["c_wrappable", "like_python_wrapper"]


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
    return made
