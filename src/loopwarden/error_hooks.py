"""The interpreter's own error printers: ``sys.excepthook`` and ``sys.unraisablehook``.

An exception that escapes a Qt slot is printed by ``sys.excepthook`` on the GUI
thread, inside the ``emit()`` or event that ran the slot; an exception in a
``__del__`` by ``sys.unraisablehook``. The interpreter's default hooks are C:
they open each source file of the traceback and read its lines with no Python
frame of their own, so the default allowance for traceback formatting (the
``traceback``, ``linecache`` and ``tokenize`` modules, which a Python hook goes
through) did not cover them, and one slot error gave some thirty ``open`` and
``readline`` findings at the user's ``emit()`` line. While the patches are
installed these hooks run inside an allowance when they are the interpreter's
defaults; a hook of the application's own is left to the rules.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from loopwarden.allowances import ALL, allowed_here
from loopwarden.wraps import Wrap

__all__ = ["HOOKS", "WRAPS"]

#: The hooks, each with the interpreter's default for it.
HOOKS: dict[str, Callable[..., Any]] = {
    "excepthook": sys.__excepthook__,
    "unraisablehook": sys.__unraisablehook__,
}


def _around(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    default = HOOKS.get(name)

    def hook(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # pytest: not this frame
        if original is not default:
            return original(*args, **kwargs)
        # Printing an error report: reading the traceback's source is not the
        # application blocking (allow_blocking's own context variable).
        token = allowed_here.set(allowed_here.get() | ALL)
        try:
            return original(*args, **kwargs)
        finally:
            allowed_here.reset(token)

    hook.__name__ = getattr(original, "__name__", name)
    hook.__qualname__ = getattr(original, "__qualname__", name)
    hook.__doc__ = getattr(original, "__doc__", None)
    hook.__wrapped__ = original  # type: ignore[attr-defined]
    return hook


WRAPS: tuple[Wrap, ...] = tuple(Wrap(f"sys:{name}", _around) for name in HOOKS)
