"""Low-level attribute replacement that can be undone exactly.

Python classes, modules and Shiboken (PySide6) classes take ``setattr``.
Built-in C types (``_thread.lock``, ``io.TextIOWrapper``) refuse it, so for
them we write into the type's real ``__dict__`` the way forbiddenfruit does
and tell CPython that the type changed (``PyType_Modified``), which drops the
method cache entries that still point at the old function.

We use forbiddenfruit only for its ``patchable_builtin`` helper, and not its
``curse``: ``curse`` leaves a ``_c_<name>`` copy of the old attribute in the
type, whereas we restore the type's dictionary exactly. Importing
forbiddenfruit replaces ``builtins.dir`` with a filtering wrapper; we put the
original ``dir`` back straight after the import.
"""

from __future__ import annotations

import builtins
import ctypes
import dataclasses
from typing import Any

from loopwarden.type_versions import is_builtin_type

__all__ = [
    "Patch",
    "apply_patch",
    "builtin_type_dict",
    "revert_patch",
    "type_modified",
    "write_type_dict",
]

_MISSING: Any = object()


_type_dicts: dict[type, dict[str, Any]] = {}

# PyType_Modified with its argument type fixed once: a third cheaper per call than
# ctypes.pythonapi.PyType_Modified(ctypes.py_object(t)), paid twice per patched method
# of a built-in type on every guard cycle. PYFUNCTYPE keeps the GIL held, as pythonapi does.
_type_modified = ctypes.PYFUNCTYPE(None, ctypes.py_object)(("PyType_Modified", ctypes.pythonapi))


def builtin_type_dict(cls: type) -> dict[str, Any]:
    """The real ``__dict__`` of a built-in type, which :func:`write_type_dict` writes."""
    return _type_dict(cls)


def _type_dict(cls: type) -> dict[str, Any]:
    real = _type_dicts.get(cls)
    if real is None:
        real = _type_dicts[cls] = _find_type_dict(cls)
    return real


def _find_type_dict(cls: type) -> dict[str, Any]:
    original_dir = builtins.dir
    try:
        from forbiddenfruit import patchable_builtin
    finally:
        # forbiddenfruit swaps builtins.dir at import time; undo that side effect.
        builtins.dir = original_dir
    real_dict: dict[str, Any] = patchable_builtin(cls)
    return real_dict


@dataclasses.dataclass
class Patch:
    """One replaced attribute and everything needed to put it back."""

    owner: Any
    name: str
    original: Any  # the raw value found in owner.__dict__ / module dict, or _MISSING
    replacement: Any
    builtin_type: bool


def _raw_get(owner: Any, name: str) -> Any:
    if isinstance(owner, type):
        return owner.__dict__.get(name, _MISSING)
    return vars(owner).get(name, _MISSING)


def _write(owner: Any, name: str, value: Any, builtin_type: bool) -> None:
    if builtin_type:
        write_type_dict(owner, name, value)
        _type_modified(owner)
    elif value is _MISSING:
        delattr(owner, name)
    else:
        setattr(owner, name, value)


def write_type_dict(owner: type, name: str, value: Any) -> None:
    """Write into a built-in type's real ``__dict__`` *without* telling CPython.

    The caller must call :func:`type_modified` for ``owner`` afterwards (once for
    many writes): until then, lookups may still be served the old value from
    the type's attribute caches.
    """
    real = _type_dict(owner)
    if value is _MISSING:
        real.pop(name, None)
    else:
        real[name] = value


def type_modified(owner: type) -> None:
    """``PyType_Modified(owner)``: drop the attribute caches that point into its dict."""
    _type_modified(owner)


def apply_patch(
    owner: Any, name: str, replacement: Any, journal: list[Patch] | None = None
) -> Patch:
    """Replace ``owner.name`` with ``replacement`` and return the undo record.

    With ``journal``, the record is appended to it *before* the attribute is
    written: an exception from a signal handler arriving anywhere in between
    leaves a record for a patch that may or may not be in place, and
    :func:`revert_patch` handles both, so no write is ever lost.
    """
    builtin_type = is_builtin_type(owner)
    patch = Patch(owner, name, _raw_get(owner, name), replacement, builtin_type)
    if journal is not None:
        journal.append(patch)
    _write(owner, name, replacement, builtin_type)
    return patch


def revert_patch(patch: Patch) -> None:
    """Put back exactly what :func:`apply_patch` replaced.

    If someone else replaced the attribute after us, their value is kept:
    reverting blindly would silently drop their patch. Reverting a patch that
    is not (or no longer) in place does nothing, so it is safe to repeat.
    """
    current = _raw_get(patch.owner, patch.name)
    if current is not patch.replacement:
        return
    _write(patch.owner, patch.name, patch.original, patch.builtin_type)
