"""CPython's type version tags: look built-in classes up without spending them.

CPython caches attribute lookups on a class under the class's *version tag*.
Writing into a built-in type's dictionary (how loopwarden patches
``_thread.lock`` or ``_io.FileIO``) invalidates that tag, and the next lookup
on the class takes a new one. On CPython 3.12, the tags of all immutable and
built-in types come from one process-wide pool of about 131,000
(``_Py_MAX_GLOBAL_TYPE_VERSION_TAG``), and a type that finds the pool empty
keeps tag 0 for good. The 3.12 specializer does not expect that: two classes
at tag 0 share the inline caches of a call site, and
``threading.Condition.__enter__`` ends up calling ``_thread.lock``'s
``__enter__`` on an ``RLock`` (``TypeError: descriptor '__enter__' for
'_thread.lock' objects doesn't apply to a '_thread.RLock' object``), which soon
after crashes the interpreter (python/cpython#89811; 3.13 gives every class its
own budget of 1,000 instead, and a class past it just loses its cache).

A guard cycle rewrites about a dozen built-in types, so a process that enters
and leaves :func:`loopwarden.guard` a few thousand times would empty the pool.
This module keeps that from happening:

- :func:`class_attribute` reads a built-in class's attribute from the
  dictionaries of its MRO, the way ``getattr`` would find it, but without a
  cached lookup, so the registry spends no tag between its own writes;
- :func:`can_modify_builtin_types` says whether rewriting a built-in type still leaves a safe
  reserve in the pool (always True outside CPython 3.12); once it says no, the
  registry stops patching built-in types for the rest of the process and warns
  once, instead of letting the host crash.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

__all__ = ["can_modify_builtin_types", "class_attribute", "is_builtin_type", "tag_budget_left"]

_Py_TPFLAGS_IMMUTABLETYPE = 1 << 8
_Py_TPFLAGS_HEAPTYPE = 1 << 9

#: The last tag CPython 3.12 hands to an immutable type ((2 << 16) - 1).
_LAST_GLOBAL_TAG = (2 << 16) - 1
#: Tags kept back: enough for uninstalling everything, the lookups that follow
#: and other code's own type writes, many times over.
RESERVE = 4096

_POINTER = ctypes.sizeof(ctypes.c_void_p)
# PyTypeObject on CPython 3.10-3.13: 21 pointer-sized fields before tp_flags
# and 48 before tp_version_tag (tp_flags is padded to a pointer's size).
_FLAGS_OFFSET = 21 * _POINTER
_TAG_OFFSET = 48 * _POINTER

_SHARED_POOL = sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 12)


def is_builtin_type(owner: object) -> bool:
    """Whether ``owner`` is a C type that refuses ``setattr`` (static or immutable)."""
    if not isinstance(owner, type):
        return False
    flags = owner.__flags__
    return not flags & _Py_TPFLAGS_HEAPTYPE or bool(flags & _Py_TPFLAGS_IMMUTABLETYPE)


def class_attribute(owner: type, name: str) -> Any:
    """``getattr(owner, name)`` for a class, found without a cached lookup on a built-in type.

    Only for attributes a class defines for its instances (methods,
    descriptors): the metaclass is not consulted.

    Raises:
        AttributeError: no class in ``owner.__mro__`` defines ``name``.
    """
    if not is_builtin_type(owner):
        return getattr(owner, name)
    # ``__mro__`` and ``__dict__`` are data descriptors of the metaclass, so
    # reading them does not look anything up on ``owner`` itself, and a
    # mappingproxy reads the real dictionary directly.
    for klass in owner.__mro__:
        namespace = klass.__dict__
        if name in namespace:
            raw = namespace[name]
            bind = getattr(type(raw), "__get__", None)
            return raw if bind is None else bind(raw, None, owner)
    raise AttributeError(f"type object {owner.__qualname__!r} has no attribute {name!r}")


def _layout_readable() -> bool:
    if not _SHARED_POOL:
        return False
    try:
        flags = ctypes.c_ulong.from_address(id(int) + _FLAGS_OFFSET).value
    except (ValueError, OSError):  # pragma: no cover - ctypes refuses the address
        return False
    return flags & 0xFFFFFFFF == int.__flags__ & 0xFFFFFFFF


_READABLE = _layout_readable()
_pool_spent = False

#: A built-in type nothing calls methods on, used to read the pool's position.
_PROBE: type = type(Ellipsis)


def _tag(owner: type) -> int:
    return ctypes.c_uint.from_address(id(owner) + _TAG_OFFSET).value


def tag_budget_left() -> int | None:
    """Tags left in CPython 3.12's shared pool; None on other Pythons.

    Reading it spends one tag: the probe type is marked modified (its
    dictionary is untouched) and looked up, which hands it the pool's next tag.
    """
    if not _READABLE:
        return None
    ctypes.pythonapi.PyType_Modified(ctypes.py_object(_PROBE))
    # A missing name: type's own data descriptors (__doc__, __name__) would be
    # answered by the metaclass without a lookup on the probe itself.
    getattr(_PROBE, "__loopwarden_probe__", None)
    tag = _tag(_PROBE)
    if tag == 0:
        return 0  # the pool is empty: no tag was given
    return max(_LAST_GLOBAL_TAG - tag, 0)


def can_modify_builtin_types() -> bool:
    """Whether rewriting built-in types (``_thread.lock``, ``_io.FileIO``) is still safe.

    Always True on Pythons whose built-in types do not share one pool of
    version tags. On CPython 3.12 it is False once fewer than :data:`RESERVE`
    tags are left, and from then on for good (the pool never refills). Call it
    once per installation, not per attribute: each call spends a tag.
    """
    global _pool_spent
    if not _READABLE:
        return True
    if _pool_spent:
        return False
    left = tag_budget_left()
    if left is not None and left < RESERVE:
        _pool_spent = True
        return False
    return True
